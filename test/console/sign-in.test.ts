import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import {
  chromiumAvailable,
  expectNoSeriousA11yViolations,
  launchBrowser,
  openConsole,
  screenshot,
  signIn,
  tokenTraces,
  uiTimeout,
  type ConsoleSession,
} from '../support/browser';
import { startGateway, testToken, type TestGateway } from '../support/gateway';

describe.skipIf(!chromiumAvailable())('console: signing in and out, and what the page keeps', { timeout: 60_000 }, () => {
  let browser: Browser;
  let sink: SmtpSink;
  let gateway: TestGateway;
  let baseUrl: string;
  let session: ConsoleSession | undefined;

  beforeAll(async () => {
    sink = await startSmtpSink();
    [browser, gateway] = await Promise.all([launchBrowser(), startGateway({ env: { SMTP_URL: sink.url } })]);
    baseUrl = await gateway.listen();
    // Something in the table, for the screenshots.
    const { body } = await gateway.graphql(
      'mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename } }',
      { input: { to: ['oncall@example.com'], subject: '磁盘告警', content: 'db-1 /var 97%' } },
    );
    expect(body.data?.sendEmail.__typename, JSON.stringify(body)).toBe('Delivery');
  });
  afterEach(async () => {
    const open = session;
    session = undefined;
    await open?.close();
  });
  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    await sink?.close();
  });

  const open = async (locale?: string) => (session = await openConsole(browser, baseUrl, { locale }));

  it('/console answers with a strict Content-Security-Policy: no inline script, connect-src only to itself', async () => {
    for (const pathname of ['/console', '/console/deliveries']) {
      const response = await fetch(new URL(pathname, baseUrl));
      expect(response.status, pathname).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      const csp = response.headers.get('content-security-policy');
      expect(csp, `${pathname} has no Content-Security-Policy`).toBeTruthy();
      const directives = new Map(
        csp!
          .split(';')
          .map((part) => part.trim().split(/\s+/))
          .filter((words) => words[0])
          .map(([name, ...values]) => [name.toLowerCase(), values] as const),
      );
      expect(directives.get('connect-src'), csp!).toEqual(["'self'"]);
      const scriptSrc = directives.get('script-src') ?? directives.get('default-src');
      expect(scriptSrc, `${csp}: no script-src nor default-src`).toBeDefined();
      expect(scriptSrc).not.toContain("'unsafe-inline'");
      expect(scriptSrc).not.toContain("'unsafe-eval'");
      expect(scriptSrc!.every((source) => source === "'self'" || source.startsWith("'sha") || source.startsWith("'nonce-")), csp!).toBe(true);
      // And the page itself has no inline script for a CSP to refuse.
      const html = await response.text();
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
    }
  });

  it('a wrong token is refused plainly; the right one opens the deliveries', async () => {
    const { page } = await open();
    await page.goto('/console');
    await expect.poll(() => page.getByLabel('OPS-Token').count()).toBe(1);
    await expectNoSeriousA11yViolations(page, 'sign-in (en)');
    await screenshot(page, 'sign-in');

    await page.getByLabel('OPS-Token').fill('ngw_not-a-token-of-this-gateway');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('This OPS-Token was not accepted.').waitFor({ timeout: uiTimeout });
    // Refused, so not kept, and the page stays on the sign-in form.
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(await page.getByRole('table').count()).toBe(0);
    await expectNoSeriousA11yViolations(page, 'sign-in with the refusal');
    await screenshot(page, 'sign-in-refused');

    await page.getByLabel('OPS-Token').fill(testToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Deliveries', exact: true }).waitFor({ timeout: uiTimeout });
    // /console opens the deliveries, at their own address.
    await page.waitForURL(/\/console\/deliveries$/, { timeout: uiTimeout });
    await page.getByRole('table').waitFor({ timeout: uiTimeout });
    await expect.poll(() => page.getByText('This OPS-Token was not accepted.').count()).toBe(0);
  });

  it('keeps the token only in the tab (never a URL, a cookie or localStorage), and Sign out forgets it', async () => {
    const current = await open();
    const { page } = current;
    await signIn(page, testToken);
    await page.getByRole('table').waitFor({ timeout: uiTimeout });
    // Walk the pages, so that every route's requests are recorded.
    for (const name of ['Overview', 'Send', 'Tokens', 'Deliveries']) {
      await page.getByRole('link', { name, exact: true }).click();
      await page.waitForURL(new RegExp(`/console/${name.toLowerCase()}`), { timeout: uiTimeout });
    }
    // Every page's every request went to the gateway itself: scripts, styles, GraphQL and its event stream.
    expect(current.requests.length).toBeGreaterThan(5);
    expect(current.requests.every((url) => url.startsWith(`${current.origin}/`) || /^(data|blob|about):/.test(url)), current.requests.join('\n')).toBe(true);
    expect(current.requests.some((url) => /\/console\/[^/]+\.js$/.test(url))).toBe(true);
    expect(current.requests.some((url) => url.endsWith('/graphql') || url.includes('/graphql?'))).toBe(true);
    // Nor in the gateway's log (every line, at debug level in tests), nor the refused one from the test before.
    const logged = JSON.stringify(gateway.logs);
    expect(logged).toContain('/graphql');
    expect(logged).not.toContain(testToken);
    expect(logged).not.toContain('ngw_not-a-token-of-this-gateway');
    const traces = await tokenTraces(current, testToken);
    expect(traces.cookies).toEqual([]);
    expect(traces.localStorage).toEqual([]);
    expect(traces.urls).toEqual([]);
    expect(Object.values(traces.sessionStorage).some((value) => value?.includes(testToken)), 'the token is in sessionStorage while signed in').toBe(true);
    expect(await current.context.cookies()).toEqual([]);

    // A reload of the tab keeps the session (sessionStorage lives as long as the tab).
    await page.reload();
    await page.getByRole('table').waitFor({ timeout: uiTimeout });
    expect(await page.getByLabel('OPS-Token').count()).toBe(0);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('OPS-Token').waitFor({ timeout: uiTimeout });
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    const after = await tokenTraces(current, testToken);
    expect(after.localStorage).toEqual([]);
    expect(after.cookies).toEqual([]);
    // Signed out for good: a reload or a deep link asks for the token again.
    await page.goto('/console/deliveries');
    await page.getByLabel('OPS-Token').waitFor({ timeout: uiTimeout });
    expect(await page.getByRole('table').count()).toBe(0);
  });

  it('can be used from the keyboard alone: Tab to the token, Enter to sign in, Tab to a nav link, Enter to open it', async () => {
    const { page } = await open();
    await page.goto('/console');
    await page.getByLabel('OPS-Token').waitFor({ timeout: uiTimeout });
    /** Presses Tab (or Shift+Tab) until the focused element is `target` (at most 30 times). */
    const tabTo = async (target: ReturnType<typeof page.getByRole>, key = 'Tab') => {
      for (let presses = 0; presses < 30; presses++) {
        if (await target.evaluate((element) => element === document.activeElement)) return;
        await page.keyboard.press(key);
      }
      throw new Error(`${key} never reached the control`);
    };
    await tabTo(page.getByLabel('OPS-Token'));
    await page.keyboard.type(testToken);
    await page.keyboard.press('Enter');
    await page.getByRole('table').waitFor({ timeout: uiTimeout });
    // The page's heading has the focus now; the navigation is above it.
    await tabTo(page.getByRole('link', { name: 'Overview', exact: true }), 'Shift+Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/console\/overview$/, { timeout: uiTimeout });
    // Every control on the page has a name a screen reader can say (axe checks the rest).
    const unnamed = await page.evaluate(() =>
      [...document.querySelectorAll('button, a[href], input, select, textarea')]
        .filter((element) => !(element as HTMLElement).innerText?.trim() && !element.getAttribute('aria-label') && !(element as HTMLInputElement).labels?.length)
        .map((element) => element.outerHTML.slice(0, 80)),
    );
    expect(unnamed).toEqual([]);
  });

  it('follows a Chinese browser (zh-CN) and switches to English and back', async () => {
    const { page } = await open('zh-CN');
    await page.goto('/console');
    await page.getByRole('button', { name: 'English' }).waitFor({ timeout: uiTimeout });
    expect(await page.getByRole('button', { name: 'Sign in' }).count(), 'zh-CN shows the English sign-in button').toBe(0);
    expect(await page.locator('html').getAttribute('lang')).toMatch(/^zh/);
    await expectNoSeriousA11yViolations(page, 'sign-in (zh-CN)');
    await screenshot(page, 'sign-in-zh');

    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor({ timeout: uiTimeout });
    expect(await page.locator('html').getAttribute('lang')).toMatch(/^en/);
    await page.getByRole('button', { name: '中文' }).click();
    await page.getByRole('button', { name: 'English' }).waitFor({ timeout: uiTimeout });

    // Signed in, in Chinese: the deliveries page passes axe-core too.
    await page.getByLabel('OPS-Token').fill(testToken);
    await page.locator('button[type=submit], form button').first().click();
    await page.getByRole('table').waitFor({ timeout: uiTimeout });
    await expectNoSeriousA11yViolations(page, 'deliveries (zh-CN)');
    await screenshot(page, 'deliveries-zh');
  });
});
