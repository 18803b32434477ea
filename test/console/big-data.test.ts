import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDeliveries } from '../../bench/seed';
import { SqliteStore } from '../../src/db/sqlite-store';
import { chromiumAvailable, launchBrowser, openConsole, screenshot, screenshotDir, uiTimeout, type ConsoleSession } from '../support/browser';
import { testToken } from '../support/gateway';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process';

const total = 1_000_000;
const pageRows = 50;
const signIns = 5;
/** The bound: the table's first page rendered within 300 ms of the token being entered. */
const boundMs = 300;

interface Timing {
  /** Sign in clicked (the click event in the page) → 50 rows in the table's DOM. */
  domMs: number;
  /** Sign in clicked → the next frame begins (its requestAnimationFrame callbacks). */
  frameMs: number;
  /** Sign in clicked → that frame rendered (a task queued from its requestAnimationFrame callback). */
  paintedMs: number;
  /** The same span seen from the test: before Playwright's click → the 50th row found by Playwright. */
  outsideMs: number;
  /** The GraphQL requests the page made in that span: when each started after the click and how long it took. */
  requests: { startMs: number; durationMs: number; bytes: number }[];
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const round = (value: number) => Math.round(value * 10) / 10;

/** Rows of the deliveries table that hold cells (not the header row). */
const countBodyRows = (page: Page) => page.evaluate(() => [...document.querySelectorAll('table tr')].filter((row) => row.querySelector('td')).length);

/**
 * Marks in the page itself: when the Sign in click reaches it, when the 50th row is in the DOM, and when the frame
 * after that has been painted. Installed through the DevTools protocol (the page's CSP forbids inline script, not this).
 */
async function armMarks(page: Page, rows: number): Promise<void> {
  await page.evaluate((wanted) => {
    const marks = { start: 0, dom: 0, frame: 0, painted: 0 };
    (window as any).__consoleMarks = marks;
    const bodyRows = () => [...document.querySelectorAll('table tr')].filter((row) => row.querySelector('td')).length;
    document.addEventListener(
      'click',
      (event) => {
        const button = (event.target as Element | null)?.closest('button');
        if (button && button.textContent?.trim() === 'Sign in' && !marks.start) marks.start = performance.now();
      },
      { capture: true },
    );
    const observer = new MutationObserver(() => {
      if (!marks.start || marks.dom || bodyRows() < wanted) return;
      marks.dom = performance.now();
      observer.disconnect();
      // The next frame's callbacks run before its style, layout and paint; a task queued there runs after them.
      requestAnimationFrame(() => {
        marks.frame = performance.now();
        setTimeout(() => (marks.painted = performance.now()), 0);
      });
    });
    observer.observe(document, { childList: true, subtree: true });
  }, rows);
}

async function readMarks(page: Page) {
  await page.waitForFunction(() => (window as any).__consoleMarks?.painted > 0, undefined, { timeout: 10_000 });
  return page.evaluate(() => {
    const marks = (window as any).__consoleMarks as { start: number; dom: number; frame: number; painted: number };
    const requests = performance
      .getEntriesByType('resource')
      .filter((entry) => entry.name.includes('/graphql') && entry.startTime >= marks.start && entry.startTime <= marks.painted)
      .map((entry) => {
        const timing = entry as PerformanceResourceTiming;
        return { startMs: timing.startTime - marks.start, durationMs: timing.duration, bytes: timing.encodedBodySize };
      });
    return { domMs: marks.dom - marks.start, frameMs: marks.frame - marks.start, paintedMs: marks.painted - marks.start, requests };
  });
}

/** The deliveries the table shows, by the ids their rows link to. */
const firstCells = (page: Page) =>
  page.evaluate(() =>
    [...document.querySelectorAll('table tr')]
      .filter((row) => row.querySelector('td'))
      .map((row) => row.querySelector('a[href*="/console/deliveries/"]')?.getAttribute('href') ?? row.textContent ?? ''),
  );

/** Keyset paging on the big table: Older twice, then Newer back, each a full page of other rows. */
async function pageThrough(page: Page): Promise<void> {
  const first = await firstCells(page);
  const older = page.getByRole('button', { name: 'Older' });
  await older.click();
  await page.waitForURL(/[?&]after=/, { timeout: uiTimeout });
  await expect.poll(async () => (await firstCells(page))[0] !== first[0], { timeout: uiTimeout }).toBe(true);
  const second = await firstCells(page);
  expect(second).toHaveLength(pageRows);
  expect(second.filter((row) => first.includes(row))).toEqual([]);
  await older.click();
  await expect.poll(async () => (await firstCells(page))[0] !== second[0], { timeout: uiTimeout }).toBe(true);
  await page.getByRole('button', { name: 'Newer' }).click();
  await expect.poll(async () => (await firstCells(page))[0] === second[0], { timeout: uiTimeout }).toBe(true);
  expect(await firstCells(page)).toEqual(second);
}

describe.skipIf(!chromiumAvailable())(`console: the first page on ${total.toLocaleString('en-US')} deliveries`, { timeout: 120_000 }, () => {
  let browser: Browser;
  let gateway: GatewayProcess;
  let session: ConsoleSession | undefined;
  let dir: string;
  let seedMs = 0;

  beforeAll(async () => {
    const launching = launchBrowser();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-gateway-console-1m-'));
    const databasePath = path.join(dir, 'notify.db');
    // The real migrations first (the store applies them on open), then the rows, as bench/ seeds them.
    await (await SqliteStore.open(databasePath)).close();
    const started = performance.now();
    seedDeliveries(databasePath, total, 0);
    seedMs = performance.now() - started;
    // The gateway as `npm start` runs it, in a process of its own: in this one it would share the event loop with
    // Playwright's client, whose work during the first sign-in was measured as the gateway's.
    gateway = await spawnGateway({ dir, bundle: true });
    browser = await launching;
  }, 120_000);
  afterAll(async () => {
    await session?.context.close();
    await browser?.close();
    await gateway?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`renders the first ${pageRows} rows within ${boundMs} ms of Sign in (median of ${signIns} sign-ins)`, async () => {
    const baseUrl = gateway.url;
    session = await openConsole(browser, baseUrl);
    const { page } = session;
    await page.goto('/console');
    const timings: Timing[] = [];
    for (let turn = 0; turn < signIns; turn++) {
      const field = page.getByLabel('OPS-Token');
      await field.waitFor({ timeout: uiTimeout });
      await field.fill(testToken);
      await armMarks(page, pageRows);
      const outsideStart = performance.now();
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('table tr:has(td)').nth(pageRows - 1).waitFor({ timeout: 10_000 });
      const outsideMs = performance.now() - outsideStart;
      const marks = await readMarks(page);
      timings.push({ ...marks, outsideMs });
      expect(await countBodyRows(page), 'the first page holds 50 rows').toBe(pageRows);
      if (turn === 0) {
        await screenshot(page, 'deliveries-1m');
        // The rows shown are the newest 50 of the million, as the API lists them.
        const { body } = await gateway.graphql('{ deliveries(first: 50) { edges { node { id } } } }');
        const newest = body.data.deliveries.edges.map((edge: { node: { id: string } }) => `/console/deliveries/${encodeURIComponent(edge.node.id)}`);
        expect(await firstCells(page)).toEqual(newest);
      }
      if (turn === signIns - 1) await pageThrough(page);
      await page.getByRole('button', { name: 'Sign out' }).click();
    }
    await session.close();
    session = undefined;

    const painted = timings.map((timing) => timing.paintedMs);
    const result = {
      when: new Date().toISOString(),
      // What else the machine was doing: the load average over the last minute, against its cores.
      loadAverage1m: round(os.loadavg()[0]),
      cores: os.availableParallelism(),
      deliveries: total,
      seedMs: Math.round(seedMs),
      medianPaintedMs: round(median(painted)),
      medianDomMs: round(median(timings.map((timing) => timing.domMs))),
      medianOutsideMs: round(median(timings.map((timing) => timing.outsideMs))),
      signIns: timings.map((timing) => ({
        paintedMs: round(timing.paintedMs),
        domMs: round(timing.domMs),
        frameMs: round(timing.frameMs),
        outsideMs: round(timing.outsideMs),
        graphql: timing.requests.map((request) => `${round(request.startMs)}+${round(request.durationMs)} ms (${request.bytes} B)`),
      })),
    };
    fs.mkdirSync(path.dirname(screenshotDir), { recursive: true });
    fs.writeFileSync(path.join(path.dirname(screenshotDir), 'console-first-page.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log(`console first page on 1M deliveries: ${JSON.stringify(result)}`);
    // Each sign-in fetched its page: none was served from what the previous session left behind.
    for (const timing of timings) expect(timing.requests.length, JSON.stringify(result.signIns)).toBeGreaterThan(0);
    expect(result.medianPaintedMs, `median of ${signIns} sign-ins over ${boundMs} ms: ${JSON.stringify(result)}`).toBeLessThan(boundMs);
  });
});
