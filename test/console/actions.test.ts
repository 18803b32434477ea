import crypto from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashToken, type TokenScopes } from '../../src/auth';
import { channels } from '../../src/db/enums';
import { startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import {
  chromiumAvailable,
  expectNoSeriousA11yViolations,
  launchBrowser,
  openConsole,
  detailField,
  rowWith,
  screenshot,
  signIn,
  uiTimeout,
  type ConsoleSession,
} from '../support/browser';
import { fetchDelivery, startGateway, testToken, type TestGateway } from '../support/gateway';

const sendEmail = `mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { id status } ... on Error { message } } }`;

/** A token stored as `npm run token -- create` stores one: only its hash, with these scopes. */
async function insertToken(gateway: TestGateway, name: string, scopes: TokenScopes): Promise<string> {
  const token = `ngw_${crypto.randomBytes(24).toString('base64url')}`;
  await gateway.store.insertToken({
    id: `tok_${crypto.randomBytes(8).toString('hex')}`,
    name,
    tokenHash: hashToken(token),
    scopes: JSON.stringify(scopes),
    createdAt: Date.now(),
    revokedAt: null,
    lastUsedAt: null,
  });
  return token;
}

/**
 * A gateway whose dispatcher does not run: what is sent stays QUEUED, so that Cancel has something to cancel and a
 * FAILED delivery (set through the store) stays as it is.
 */
describe.skipIf(!chromiumAvailable())('console: Cancel and Retry by who may use them, and the Tokens page', { timeout: 60_000 }, () => {
  let browser: Browser;
  let sink: SmtpSink;
  let gateway: TestGateway;
  let baseUrl: string;
  let session: ConsoleSession | undefined;
  const tokens = { readOnly: '', smsOnly: '', scoped: '' };
  const ids = { queued: '', failed: '', toCancel: '', raced: '' };

  beforeAll(async () => {
    sink = await startSmtpSink();
    [browser, gateway] = await Promise.all([
      launchBrowser(),
      startGateway({ noDispatch: true, env: { SMTP_URL: sink.url, SEND_WAIT_MS: '0' } }),
    ]);
    baseUrl = await gateway.listen();
    tokens.readOnly = await insertToken(gateway, 'auditor', { channels: [], read: 'all' });
    tokens.smsOnly = await insertToken(gateway, 'sms-team', { channels: ['SMS'], read: 'all' });
    tokens.scoped = await insertToken(gateway, 'ci', { channels: ['EMAIL'], read: 'own' });
    const send = async (to: string) => {
      const { body } = await gateway.graphql(sendEmail, { input: { to: [to], subject: 'held', content: 'x', wait: false } });
      expect(body.data.sendEmail.__typename, JSON.stringify(body)).toBe('Delivery');
      return body.data.sendEmail.id as string;
    };
    ids.queued = await send('queued@example.com');
    ids.toCancel = await send('cancel-me@example.com');
    ids.failed = await send('failed@example.com');
    ids.raced = await send('raced@example.com');
    const failed = await gateway.store.transition(ids.failed, ['QUEUED'], {
      status: 'FAILED',
      lastErrorCode: 'SMTP_550',
      lastErrorMessage: '550 5.1.1 No such user',
      nextAttemptAt: null,
    });
    expect(failed?.status).toBe('FAILED');
  });
  afterEach(async () => {
    const current = session;
    session = undefined;
    await current?.close();
  });
  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    await sink?.close();
  });

  async function signedIn(token: string): Promise<Page> {
    session = await openConsole(browser, baseUrl);
    const { page } = session;
    page.on('dialog', (dialog) => void dialog.accept());
    await signIn(page, token);
    await page.getByRole('table').waitFor({ timeout: uiTimeout });
    return page;
  }

  async function openDelivery(page: Page, id: string) {
    // Through the page's own router, as a shared link would.
    await page.goto(`/console/deliveries/${id}`);
    await page.getByText(id).first().waitFor({ timeout: uiTimeout });
  }

  it('cancels a QUEUED email: the page says CANCELLED, and so does the API', async () => {
    const page = await signedIn(testToken);
    await rowWith(page, 'cancel-me@example.com').first().waitFor({ timeout: uiTimeout });
    await openDelivery(page, ids.toCancel);
    expect(await detailField(page, 'Status')).toBe('QUEUED');
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    await expect.poll(() => detailField(page, 'Status'), { timeout: 4000 }).toBe('CANCELLED');
    expect((await fetchDelivery(gateway, ids.toCancel)).status).toBe('CANCELLED');
    await expect.poll(() => page.getByRole('button', { name: 'Cancel' }).count(), { timeout: 3000 }).toBe(0);
    await screenshot(page, 'delivery-cancelled');
  });

  it('shows the API\'s refusal when Cancel comes too late (another replica sent it meanwhile), and changes nothing', async () => {
    const page = await signedIn(testToken);
    await openDelivery(page, ids.raced);
    await page.getByRole('button', { name: 'Cancel', exact: true }).waitFor({ timeout: uiTimeout });
    // Sent behind the page's back: the row changes in the database, and no event reaches this gateway's listeners.
    const sent = await gateway.store.transition(ids.raced, ['QUEUED'], { status: 'SENT', sentAt: Date.now(), nextAttemptAt: null });
    expect(sent?.status).toBe('SENT');
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    await expect
      .poll(() => page.getByRole('alert').innerText(), { timeout: 4000 })
      .toContain('Only a QUEUED or RETRYING delivery can be cancelled');
    expect((await fetchDelivery(gateway, ids.raced)).status).toBe('SENT');
    await screenshot(page, 'delivery-refused');
  });

  it('a full-rights token sees Cancel on a QUEUED email and Retry on a FAILED one', async () => {
    const page = await signedIn(testToken);
    await openDelivery(page, ids.queued);
    await page.getByRole('button', { name: 'Cancel', exact: true }).waitFor({ timeout: uiTimeout });
    expect(await page.getByRole('button', { name: 'Retry' }).count()).toBe(0);
    await openDelivery(page, ids.failed);
    await page.getByRole('button', { name: 'Retry', exact: true }).waitFor({ timeout: uiTimeout });
    expect(await page.getByRole('button', { name: 'Cancel' }).count()).toBe(0);
  });

  for (const [who, key] of [
    ['a read-only token', 'readOnly'],
    ['a token without the EMAIL channel', 'smsOnly'],
  ] as const) {
    it(`${who} reads the emails but sees no Retry and no Cancel`, async () => {
      const page = await signedIn(tokens[key]);
      await rowWith(page, 'queued@example.com').first().waitFor({ timeout: uiTimeout });
      for (const id of [ids.queued, ids.failed]) {
        await openDelivery(page, id);
        // The detail has loaded (its status shows) before we look for what is absent.
        await expect.poll(() => detailField(page, 'Status'), { timeout: uiTimeout }).toBe(id === ids.failed ? 'FAILED' : 'QUEUED');
        expect(await page.getByRole('button', { name: 'Retry' }).count(), `Retry on ${id}`).toBe(0);
        expect(await page.getByRole('button', { name: 'Cancel' }).count(), `Cancel on ${id}`).toBe(0);
      }
      if (key === 'readOnly') await screenshot(page, 'delivery-read-only');
      // And the API agrees with the page.
      const { body } = await gateway.graphql('query($id: ID!) { delivery(id: $id) { viewerCanRetry viewerCanCancel } }', { id: ids.failed }, { token: tokens[key] });
      expect(body.data?.delivery).toEqual({ viewerCanRetry: false, viewerCanCancel: false });
    });
  }

  it('the overview shows the queue as the API counts it: depth by channel and the oldest pending age', async () => {
    const page = await signedIn(testToken);
    await page.getByRole('link', { name: 'Overview', exact: true }).click();
    await page.waitForURL(/\/console\/overview$/, { timeout: uiTimeout });
    const { body } = await gateway.graphql('{ deliveryQueue { depth byChannel { channel count } oldestPendingAgeSeconds } }');
    const queue = body.data.deliveryQueue;
    expect(queue.depth).toBeGreaterThan(0);
    await expect.poll(() => detailField(page, 'Waiting to be sent'), { timeout: uiTimeout }).toBe(String(queue.depth));
    expect(await detailField(page, 'Oldest pending')).toMatch(/\d+ (s|min|h)\b.*ago/);
    const email = queue.byChannel.find((entry: { channel: string }) => entry.channel === 'EMAIL')?.count ?? 0;
    await page.getByText(`Email ${email}`).first().waitFor({ timeout: uiTimeout });
    expect(await page.locator('canvas').count()).toBeGreaterThan(0);
    await screenshot(page, 'overview-pending');
  });

  it('the Tokens page with full rights: the stored tokens, a new one shown once, and Revoke', async () => {
    const page = await signedIn(testToken);
    await page.getByRole('link', { name: 'Tokens', exact: true }).click();
    await page.waitForURL(/\/console\/tokens$/, { timeout: uiTimeout });
    for (const name of ['auditor', 'sms-team', 'ci']) await page.getByRole('table').getByRole('row').filter({ hasText: name }).first().waitFor({ timeout: uiTimeout });
    await expectNoSeriousA11yViolations(page, 'tokens');
    await screenshot(page, 'tokens');

    await page.getByLabel('Name', { exact: true }).fill('pager');
    for (const channel of channels) await page.getByRole('checkbox', { name: channel, exact: true }).setChecked(channel === 'DING');
    await page.getByLabel('Read', { exact: true }).selectOption({ label: 'own' });
    await page.getByRole('button', { name: 'Create token' }).click();
    // Shown once, in a field of its own to copy from.
    const shown = page.getByRole('textbox', { name: 'New token', exact: true });
    await expect.poll(async () => ((await shown.count()) ? shown.inputValue() : ''), { timeout: uiTimeout }).toMatch(/^ngw_[A-Za-z0-9_-]{32}$/);
    const created = await shown.inputValue();
    const row = (await gateway.store.listTokens()).find((candidate) => candidate.name === 'pager');
    expect(row?.tokenHash).toBe(hashToken(created));
    expect(JSON.parse(row!.scopes)).toEqual({ channels: ['DING'], read: 'own' });
    await screenshot(page, 'tokens-created');

    const pagerRow = page.getByRole('table').getByRole('row').filter({ hasText: 'pager' }).first();
    await pagerRow.getByRole('button', { name: 'Revoke', exact: true }).click();
    await pagerRow.getByRole('button', { name: 'Confirm revoke' }).click({ timeout: 3000 }).catch(() => undefined);
    await expect.poll(async () => (await gateway.store.listTokens()).find((candidate) => candidate.name === 'pager')?.revokedAt ?? null, { timeout: uiTimeout }).not.toBeNull();
    await expect.poll(() => pagerRow.getByRole('button', { name: 'Revoke' }).count(), { timeout: uiTimeout }).toBe(0);
    // Once left, the token is never shown again.
    await page.getByRole('link', { name: 'Deliveries', exact: true }).click();
    await page.getByRole('link', { name: 'Tokens', exact: true }).click();
    await pagerRow.waitFor({ timeout: uiTimeout });
    expect(await page.getByRole('textbox', { name: 'New token', exact: true }).count()).toBe(0);
    expect(await page.locator('body').innerText()).not.toContain(created);
  });

  it('a scoped token cannot reach the Tokens page’s API: the page says it needs full rights, the API answers FORBIDDEN', async () => {
    const page = await signedIn(tokens.scoped);
    await page.goto('/console/tokens');
    await page.getByText(/full rights/i).first().waitFor({ timeout: uiTimeout });
    expect(await page.getByRole('button', { name: 'Create token' }).count()).toBe(0);
    expect(await page.getByText('auditor').count()).toBe(0);
    await expectNoSeriousA11yViolations(page, 'tokens, needing full rights');
    await screenshot(page, 'tokens-scoped');

    const answers = await page.evaluate(async (token) => {
      const post = async (query: string) => {
        const response = await fetch('/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'OPS-Token': token },
          body: JSON.stringify({ query }),
        });
        return { status: response.status, body: await response.json() };
      };
      return {
        list: await post('{ apiTokens { id name } }'),
        create: await post('mutation { createApiToken(input: { name: "sneaky", channels: [EMAIL, DING, SMS], read: ALL }) { __typename ... on Error { code message } ... on CreatedApiToken { token } } }'),
      };
    }, tokens.scoped);
    expect(answers.list.body.data?.apiTokens ?? null).toBeNull();
    expect(answers.list.body.errors?.map((error: any) => error.extensions?.code)).toContain('FORBIDDEN');
    const create = answers.create.body.data?.createApiToken;
    expect(create?.token).toBeUndefined();
    expect(create?.__typename === 'ForbiddenError' || answers.create.body.errors?.some((error: any) => error.extensions?.code === 'FORBIDDEN'), JSON.stringify(answers.create)).toBe(true);
    expect((await gateway.store.listTokens()).some((row) => row.name === 'sneaky')).toBe(false);
  });
});
