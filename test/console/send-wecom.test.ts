import crypto from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startWeComEmulator, type WeComEmulator } from '../peers/wecom-emulator';
import {
  chromiumAvailable,
  expectNoSeriousA11yViolations,
  launchBrowser,
  openConsole,
  screenshot,
  signIn,
  uiTimeout,
  type ConsoleSession,
} from '../support/browser';
import { startGateway, testToken, type TestGateway } from '../support/gateway';

describe.skipIf(!chromiumAvailable())('console: the send form for WeCom', { timeout: 60_000 }, () => {
  let browser: Browser;
  let emulator: WeComEmulator;
  let gateway: TestGateway;
  let baseUrl: string;
  let session: ConsoleSession | undefined;
  const key = crypto.randomUUID();

  beforeAll(async () => {
    emulator = await startWeComEmulator({ keys: [key] });
    [browser, gateway] = await Promise.all([launchBrowser(), startGateway({ env: { WECOM_BASE_URL: emulator.url } })]);
    baseUrl = await gateway.listen();
  });
  afterEach(async () => {
    await session?.close();
    session = undefined;
  });
  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    await emulator?.close();
  });

  async function sendPage(): Promise<Page> {
    session = await openConsole(browser, baseUrl);
    const { page } = session;
    await signIn(page, testToken);
    await page.getByRole('table').waitFor({ timeout: uiTimeout });
    await page.getByRole('link', { name: 'Send', exact: true }).click();
    await page.waitForURL(/\/console\/send/, { timeout: uiTimeout });
    return page;
  }

  it('sends TEXT with mentions to the robot, and shows an oversize content refused beside the field', async () => {
    const page = await sendPage();
    await page.getByLabel('Channel', { exact: true }).selectOption({ label: 'WeCom' });
    await page.getByLabel('Key', { exact: true }).fill(key);
    expect(await page.getByLabel('Key', { exact: true }).getAttribute('type')).toBe('password');
    await page.getByLabel('Content', { exact: true }).fill('告'.repeat(683));
    await page.getByLabel('Mentioned users', { exact: true }).fill('zhangsan, @all');
    await page.getByLabel('Mentioned mobiles', { exact: true }).fill('13800138000');
    await expectNoSeriousA11yViolations(page, 'send WeCom');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    // The API's message, beside the field and tied to it.
    const content = page.getByLabel('Content', { exact: true });
    await expect.poll(() => content.getAttribute('aria-invalid'), { timeout: uiTimeout }).toBe('true');
    expect(await content.getAttribute('aria-describedby')).toBe('send-content-error');
    expect(await page.locator('#send-content-error').innerText()).toBe('is 2049 bytes in UTF-8; WeCom accepts at most 2048 for TEXT');
    expect(emulator.requests).toHaveLength(0);
    await screenshot(page, 'send-wecom-field-error');

    await page.getByLabel('Content', { exact: true }).fill('磁盘告警: /var 95%');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.getByRole('link', { name: /dlv_/ }).first().waitFor({ timeout: 8000 });
    await expect.poll(() => emulator.messages.length, { timeout: 4000 }).toBe(1);
    expect(emulator.messages[0].body).toEqual({
      msgtype: 'text',
      text: { content: '磁盘告警: /var 95%', mentioned_list: ['zhangsan', '@all'], mentioned_mobile_list: ['13800138000'] },
    });
  });

  it('offers TEXT and MARKDOWN and hides the mention fields for MARKDOWN, where WeCom has none', async () => {
    const page = await sendPage();
    await page.getByLabel('Channel', { exact: true }).selectOption({ label: 'WeCom' });
    const type = page.getByLabel('Message type', { exact: true });
    expect(await type.locator('option').allTextContents()).toEqual(['TEXT', 'MARKDOWN']);
    expect(await page.getByLabel('Mentioned users', { exact: true }).count()).toBe(1);
    await type.selectOption('MARKDOWN');
    expect(await page.getByLabel('Mentioned users', { exact: true }).count()).toBe(0);
    expect(await page.getByLabel('Mentioned mobiles', { exact: true }).count()).toBe(0);
    await page.getByLabel('Key', { exact: true }).fill(key);
    await page.getByLabel('Content', { exact: true }).fill('## 发布\n<@zhangsan>');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await expect
      .poll(() => emulator.messages.at(-1)?.body, { timeout: 8000 })
      .toEqual({ msgtype: 'markdown', markdown: { content: '## 发布\n<@zhangsan>' } });
  });
});
