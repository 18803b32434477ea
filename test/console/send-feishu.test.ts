import crypto from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFeishuEmulator, type FeishuEmulator } from '../peers/feishu-emulator';
import { chromiumAvailable, expectNoSeriousA11yViolations, launchBrowser, openConsole, signIn, uiTimeout, type ConsoleSession } from '../support/browser';
import { deliveryWhen, startGateway, testToken, type TestGateway } from '../support/gateway';

/** The error text tied to the field labelled `label` (aria-describedby), once the field is marked invalid. */
async function fieldErrorOf(page: Page, label: string): Promise<string> {
  const field = page.getByLabel(label, { exact: true });
  await expect.poll(() => field.getAttribute('aria-invalid'), { timeout: uiTimeout }).toBe('true');
  const ids = ((await field.getAttribute('aria-describedby')) ?? '').split(/\s+/).filter(Boolean);
  const texts = await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).innerText()));
  return texts.join(' ');
}

describe.skipIf(!chromiumAvailable())('console: sending to a Feishu bot from the send form', { timeout: 60_000 }, () => {
  let browser: Browser;
  let emulator: FeishuEmulator;
  let gateway: TestGateway;
  let session: ConsoleSession | undefined;
  const bot = { token: crypto.randomUUID(), secret: crypto.randomBytes(24).toString('base64url') };

  beforeAll(async () => {
    emulator = await startFeishuEmulator({ bots: { [bot.token]: bot.secret } });
    [browser, gateway] = await Promise.all([launchBrowser(), startGateway({ env: { FEISHU_BASE_URL: emulator.url } })]);
  });
  afterAll(async () => {
    await session?.close();
    await browser?.close();
    await gateway?.close();
    await emulator?.close();
  });

  it('asks for Token, Secret, Message type, Title and Content; a CARD without a title is refused beside it, then sent and signed', async () => {
    const baseUrl = await gateway.listen();
    session = await openConsole(browser, baseUrl);
    const { page } = session;
    await signIn(page, testToken);
    await page.getByRole('link', { name: 'Send', exact: true }).click();
    await page.waitForURL(/\/console\/send/, { timeout: uiTimeout });
    await page.getByLabel('Channel', { exact: true }).selectOption({ label: 'Feishu' });
    await page.getByLabel('Token', { exact: true }).fill(bot.token);
    await page.getByLabel('Secret', { exact: true }).fill(bot.secret);
    await page.getByLabel('Message type', { exact: true }).selectOption('CARD');
    await page.getByLabel('Content', { exact: true }).fill('**CPU** 95%');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    expect(await fieldErrorOf(page, 'Title')).toContain('is required for CARD');
    expect(emulator.requests).toHaveLength(0);
    await expectNoSeriousA11yViolations(page, 'send feishu with a field error');

    await page.getByLabel('Title', { exact: true }).fill('告警');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    const opened = page.getByRole('link', { name: /dlv_/ }).first();
    await opened.waitFor({ timeout: 8000 });
    const id = (await opened.innerText()).match(/dlv_\S+/)![0];
    expect((await deliveryWhen(gateway, id, (delivery) => delivery.status === 'SENT')).channel).toBe('FEISHU');
    expect(emulator.messages).toHaveLength(1);
    expect(emulator.messages[0]).toMatchObject({
      signatureVerified: true,
      body: { msg_type: 'interactive', card: { header: { title: { content: '告警' } }, elements: [{ tag: 'markdown', content: '**CPU** 95%' }] } },
    });
  });
});
