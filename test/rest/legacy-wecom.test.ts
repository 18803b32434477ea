import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { errorCatalog } from '../../src/errors';
import { startWeComEmulator, type WeComEmulator } from '../peers/wecom-emulator';
import { countDeliveries, describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';
import { legacyRequest, query } from './legacy-client';

// Every hostile piece at once: raw +, %2B, %26, %3D, %25, %0A, a 4-byte emoji, Chinese.
const rawContent = 'a+b%2Bc%26d%3De%25f%0Ag%F0%9F%98%80%E4%B8%AD%E6%96%87';
const decodedContent = 'a b+c&d=e%f\ng😀中文';

describeOnStores('legacy REST /api/third/wecom/sendMsg', (kind) => {
  let gateway: AnyGateway;
  let wecom: WeComEmulator;
  let base: string;
  const key = crypto.randomUUID();
  const texts: string[] = [];
  const send = async (rawPath: string, options?: Parameters<typeof legacyRequest>[2]) => {
    const response = await legacyRequest(base, rawPath, options);
    texts.push(response.text);
    return response;
  };

  beforeAll(async () => {
    wecom = await startWeComEmulator({ keys: [key] });
    gateway = await startGatewayOn(kind, { env: { WECOM_BASE_URL: wecom.url } });
    base = await gateway.listen();
  });
  afterAll(async () => {
    await gateway?.close();
    await wecom?.close();
  });
  beforeEach(() => wecom.reset());

  it('GET ?key&content: WeCom received the content exactly, answered code 1000 sent', async () => {
    const { body } = await send(`/api/third/wecom/sendMsg?key=${key}&content=${rawContent}`);
    expect(body).toEqual({ code: 1000, data: 'sent', deliveryId: expect.stringMatching(/^dlv_/) });
    expect(wecom.messages).toHaveLength(1);
    expect(wecom.messages[0]).toMatchObject({ key, body: { msgtype: 'text', text: { content: decodedContent } } });
  });

  it('takes msgType markdown and mention lists (commas or semicolons), and a JSON body', async () => {
    const markdown = await send(`/api/third/wecom/sendMsg?${query({ key, content: '## 发布', msgType: 'markdown' })}`);
    expect(markdown.body).toMatchObject({ code: 1000, data: 'sent' });
    const mentioned = await send(
      `/api/third/wecom/sendMsg?${query({ key, content: '告警', mentionedList: 'zhangsan;lisi', mentionedMobileList: '13800138000,@all' })}`,
    );
    expect(mentioned.body).toMatchObject({ code: 1000, data: 'sent' });
    const json = await send('/api/third/wecom/sendMsg', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key, content: 'from json', mentionedList: ['wangwu'] }),
    });
    expect(json.body).toMatchObject({ code: 1000, data: 'sent' });
    expect(wecom.messages.map((message) => message.body)).toEqual([
      { msgtype: 'markdown', markdown: { content: '## 发布' } },
      { msgtype: 'text', text: { content: '告警', mentioned_list: ['zhangsan', 'lisi'], mentioned_mobile_list: ['13800138000', '@all'] } },
      { msgtype: 'text', text: { content: 'from json', mentioned_list: ['wangwu'] } },
    ]);
  });

  it('a wrong key is refused by WeCom: the provider-rejected code with its reason, never the key', async () => {
    const wrong = crypto.randomUUID();
    const { body, text } = await send(`/api/third/wecom/sendMsg?${query({ key: wrong, content: 'x' })}`);
    expect(body).toEqual({
      code: errorCatalog.PROVIDER_REJECTED.restCode,
      data: expect.stringMatching(/^invalid webhook url, hint: .*e=93000$/),
      deliveryId: expect.any(String),
    });
    expect(text).not.toContain(wrong);
  });

  it('refuses missing parameters and an oversize text before recording anything', async () => {
    const before = await countDeliveries(gateway);
    const missing = await send(`/api/third/wecom/sendMsg?${query({ content: 'x' })}`);
    expect(missing.body).toEqual({ code: errorCatalog.INVALID_ARGUMENT.restCode, data: 'key: is required' });
    const oversize = await send(`/api/third/wecom/sendMsg?${query({ key, content: '告'.repeat(683) })}`);
    expect(oversize.body).toEqual({
      code: errorCatalog.INVALID_ARGUMENT.restCode,
      data: 'content: is 2049 bytes in UTF-8; WeCom accepts at most 2048 for TEXT',
    });
    const badKey = await send(`/api/third/wecom/sendMsg?${query({ key: 'abc', content: 'x' })}`);
    expect(badKey.body).toMatchObject({ code: errorCatalog.INVALID_ARGUMENT.restCode, data: expect.stringContaining('key: must be the robot key') });
    expect(await countDeliveries(gateway)).toBe(before);
    expect(wecom.requests).toHaveLength(0);
  });

  it('never writes the key to the log or an answer', () => {
    expect(texts.length).toBeGreaterThan(5);
    const everything = texts.join('\n') + JSON.stringify(gateway.logs);
    expect(everything).not.toContain(key);
  });
});
