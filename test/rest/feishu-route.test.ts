import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { errorCatalog } from '../../src/errors';
import { startFeishuEmulator, type FeishuEmulator } from '../peers/feishu-emulator';
import { countDeliveries, describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';
import { legacyRequest, query } from './legacy-client';

// Every hostile piece at once: raw +, %2B, %26, %3D, %25, %0A, a 4-byte emoji, Chinese.
const rawContent = 'a+b%2Bc%26d%3De%25f%0Ag%F0%9F%98%80%E4%B8%AD%E6%96%87';
const decodedContent = 'a b+c&d=e%f\ng😀中文';

describeOnStores('GET /api/third/feishu/sendMsg end to end', (kind) => {
  let gateway: AnyGateway;
  let feishu: FeishuEmulator;
  let base: string;
  const bot = { token: crypto.randomUUID(), secret: crypto.randomBytes(24).toString('base64url') };
  const unsigned = crypto.randomUUID();
  const send = (rawPath: string) => legacyRequest(base, rawPath);

  beforeAll(async () => {
    feishu = await startFeishuEmulator({ bots: { [bot.token]: bot.secret, [unsigned]: undefined } });
    gateway = await startGatewayOn(kind, { env: { FEISHU_BASE_URL: feishu.url } });
    base = await gateway.listen();
  });
  afterAll(async () => {
    await gateway?.close();
    await feishu?.close();
  });
  beforeEach(() => feishu.reset());

  it('sends: the emulator verified the signature and received the content exactly', async () => {
    const { status, body } = await send(`/api/third/feishu/sendMsg?token=${bot.token}&secret=${bot.secret}&content=${rawContent}`);
    expect(status).toBe(200);
    expect(body).toEqual({ code: errorCatalog.OK.restCode, data: 'sent', deliveryId: expect.stringMatching(/^dlv_/) });
    expect(feishu.messages).toHaveLength(1);
    expect(feishu.messages[0]).toMatchObject({ token: bot.token, signatureVerified: true, body: { msg_type: 'text', content: { text: decodedContent } } });
  });

  it('sends without a secret to a bot without signing, and takes msgType/title/atAll', async () => {
    const { body } = await send(`/api/third/feishu/sendMsg?${query({ token: unsigned, content: '**x**', msgType: 'card', title: 'T', atAll: 'true' })}`);
    expect(body).toMatchObject({ code: errorCatalog.OK.restCode, data: 'sent' });
    expect(feishu.messages[0]!.body).toMatchObject({ msg_type: 'interactive', card: { header: { title: { content: 'T' } } } });
  });

  it('a wrong secret is refused by Feishu, and the answer carries its reason and code', async () => {
    const { body } = await send(`/api/third/feishu/sendMsg?${query({ ...bot, secret: 'wrong', content: 'x' })}`);
    expect(body).toEqual({
      code: errorCatalog.PROVIDER_REJECTED.restCode,
      data: 'sign match fail or timestamp is not within one hour from current time (19021)',
      deliveryId: expect.any(String),
    });
    expect(feishu.messages).toHaveLength(0);
  });

  it('refuses a missing token, and an oversize content before recording anything', async () => {
    const before = await countDeliveries(gateway);
    expect((await send(`/api/third/feishu/sendMsg?${query({ content: 'x' })}`)).body).toEqual({
      code: errorCatalog.INVALID_ARGUMENT.restCode,
      data: 'token: is required',
    });
    // Too long for a query string: the same parameters as JSON, as the route reads them.
    const big = await legacyRequest(base, '/api/third/feishu/sendMsg', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...bot, content: '告'.repeat(6700) }),
    });
    expect(big.body.code).toBe(errorCatalog.INVALID_ARGUMENT.restCode);
    expect(big.body.data).toMatch(/^content: makes a Feishu message of \d+ bytes/);
    expect(await countDeliveries(gateway)).toBe(before);
    expect(feishu.requests).toHaveLength(0);
    expect(JSON.stringify(gateway.logs)).not.toContain(bot.secret);
    expect(JSON.stringify(gateway.logs)).not.toContain(bot.token);
  });
});
