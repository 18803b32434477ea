import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import AxeBuilder from '@axe-core/playwright';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { expect, inject } from 'vitest';

/**
 * The browser suites (test/console): Debian's Chromium driven by playwright-core. Each test file launches one browser
 * and opens a fresh context (its own storage, `en-US` unless told) per test; `openConsole` records every request the
 * pages make so that a test fails when one goes to another origin.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Debian's package (apt-get install -y chromium); CHROMIUM_PATH overrides. */
export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/**
 * How long a test waits for the page to show something (a row, a route, a message) before failing: generous, for a
 * 2-core machine running other suites at the same time. The timing claims (live updates, the 1M first page) have
 * bounds of their own.
 */
export const uiTimeout = 10_000;

/** PNGs of each page, for a person to look at (git ignores the folder). */
export const screenshotDir = path.join(root, 'test-output', 'screenshots');

declare module 'vitest' {
  export interface ProvidedContext {
    /** Whether Chromium was found when the run started (test/support/global-setup.ts). */
    chromiumAvailable: boolean;
  }
}

/** Is there an executable at `chromiumPath`. */
export function chromiumInstalled(): boolean {
  try {
    fs.accessSync(chromiumPath, fs.constants.X_OK);
    return fs.statSync(chromiumPath).isFile();
  } catch {
    return false;
  }
}

/** True when the browser suites run; false means they are skipped (never with CI=true: the run failed then). */
export const chromiumAvailable = (): boolean => inject('chromiumAvailable');

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
}

export interface ConsoleSession {
  context: BrowserContext;
  page: Page;
  /** The gateway's origin, e.g. http://127.0.0.1:43121. */
  origin: string;
  /** Every URL the pages of this context requested, in order. */
  requests: string[];
  /** Requests to any other origin (there must be none). */
  foreign: string[];
  /** Uncaught exceptions and Content-Security-Policy refusals the pages reported. */
  pageErrors: string[];
  /** Every console message of level error (for diagnostics). */
  consoleErrors: string[];
  /** Fails when a page requested another origin or threw, or a CSP refused something; closes the context. */
  close(): Promise<void>;
}

/** A schemes that never reach the network (or stay in the page's own process). */
const localSchemes = new Set(['data:', 'blob:', 'about:']);

/**
 * A new context (own cookies and storage) on the gateway at `baseUrl` with one page open on nothing yet. Every request
 * any page of the context makes is recorded; `close()` fails the test if one went to another origin.
 */
export async function openConsole(browser: Browser, baseUrl: string, options: { locale?: string } = {}): Promise<ConsoleSession> {
  const origin = new URL(baseUrl).origin;
  const context = await browser.newContext({
    locale: options.locale ?? 'en-US',
    baseURL: origin,
    viewport: { width: 1280, height: 800 },
    serviceWorkers: 'block',
  });
  // Nothing waits for the page longer than this unless told (the tests' own timeout is longer).
  context.setDefaultTimeout(uiTimeout);
  const requests: string[] = [];
  const foreign: string[] = [];
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];
  context.on('request', (request) => {
    const url = request.url();
    requests.push(url);
    const parsed = new URL(url);
    if (localSchemes.has(parsed.protocol)) return;
    if (parsed.origin !== origin) foreign.push(`${request.method()} ${url} (${request.resourceType()})`);
  });
  const watch = (page: Page) => {
    page.on('pageerror', (error) => pageErrors.push(`uncaught: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const text = message.text();
      consoleErrors.push(text);
      if (/Content Security Policy/i.test(text)) pageErrors.push(`CSP: ${text}`);
    });
    page.on('websocket', (socket) => {
      const url = new URL(socket.url());
      const expected = origin.replace(/^http/, 'ws');
      requests.push(socket.url());
      if (url.origin !== expected) foreign.push(`WebSocket ${socket.url()}`);
    });
  };
  context.on('page', watch);
  const page = await context.newPage();
  let closed = false;
  return {
    context,
    page,
    origin,
    requests,
    foreign,
    pageErrors,
    consoleErrors,
    async close() {
      if (closed) return;
      closed = true;
      await context.close();
      expect(foreign, 'the console requested another origin').toEqual([]);
      expect(pageErrors, 'the console threw or violated its Content-Security-Policy').toEqual([]);
    },
  };
}

/** Writes `<name>.png` (the whole page) under test-output/screenshots/ and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(screenshotDir, { recursive: true });
  const file = path.join(screenshotDir, `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}.png`);
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
  return file;
}

/** Runs axe-core on the page as it is now and fails on any serious or critical violation, naming rules and targets. */
export async function expectNoSeriousA11yViolations(page: Page, label = page.url()): Promise<void> {
  // Legacy mode runs axe in the page itself, without the blank page the default mode opens to merge frame results:
  // 2 to 3 times faster here, and the console has no frames to merge.
  const results = await new AxeBuilder({ page }).setLegacyMode(true).analyze();
  const serious = results.violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
  const described = serious.map(
    (violation) =>
      `${violation.id} (${violation.impact}): ${violation.help}\n` +
      violation.nodes.map((node) => `    ${node.target.map(String).join(' ')}${node.failureSummary ? `: ${node.failureSummary.replace(/\s+/g, ' ')}` : ''}`).join('\n'),
  );
  expect(serious.length, `axe-core on ${label}: serious or critical violations\n  ${described.join('\n  ')}`).toBe(0);
}

/** Opens /console, types the token in the `OPS-Token` field and presses `Sign in`. */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.goto('/console');
  await page.getByLabel('OPS-Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Where the token might have been kept: cookies, localStorage, the URLs of the pages. */
export async function tokenTraces(session: ConsoleSession, token: string) {
  const { page, context } = session;
  const inPage = await page.evaluate(() => ({
    cookie: document.cookie,
    local: Object.fromEntries(Object.keys(localStorage).map((key) => [key, localStorage.getItem(key)])),
    session: Object.fromEntries(Object.keys(sessionStorage).map((key) => [key, sessionStorage.getItem(key)])),
  }));
  const cookies = await context.cookies();
  return {
    cookies: [inPage.cookie, ...cookies.map((cookie) => `${cookie.name}=${cookie.value}`)].filter((text) => text.includes(token)),
    localStorage: Object.entries(inPage.local).filter(([key, value]) => `${key}=${value}`.includes(token)),
    urls: [page.url(), ...session.requests].filter((url) => url.includes(token) || url.includes(encodeURIComponent(token))),
    sessionStorage: inPage.session,
  };
}

/** The deliveries table's row showing `text` (a recipient, say). */
export function rowWith(page: Page, text: string) {
  return page.getByRole('table').getByRole('row').filter({ hasText: text });
}

/** The text of the cell under the column headed `column` in `row` (its own table's header row gives the index). */
export async function cellText(row: Locator, column: string): Promise<string> {
  const table = row.first().locator('xpath=ancestor::table[1]');
  const headers = (await table.locator('thead th, thead td').allInnerTexts()).map((text) => text.trim());
  const index = headers.indexOf(column);
  if (index < 0) throw new Error(`no column headed ${column} (the table has: ${headers.join(', ')})`);
  return (await row.first().locator('th, td').nth(index).innerText()).trim();
}

/** Reads the status cell of the row with `text`, or '' while there is no such row. */
export async function statusOfRow(page: Page, text: string): Promise<string> {
  const row = rowWith(page, text);
  if ((await row.count()) === 0) return '';
  return cellText(row, 'Status');
}

/** The value shown for `term` in one delivery's list of fields (a `dt`/`dd` pair), or '' while there is none. */
export async function detailField(page: Page, term: string): Promise<string> {
  const value = page.locator('dt').filter({ hasText: new RegExp(`^\\s*${term.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`) }).first().locator('xpath=following-sibling::dd[1]');
  if ((await value.count()) === 0) return '';
  return (await value.innerText()).trim();
}
