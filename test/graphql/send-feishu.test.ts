import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { busiestWindow, startFeishuEmulator, type FeishuEmulator } from '../peers/feishu-emulator';
import { countDeliveries, describeOnStores, rawDeliveryRows, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryFields, eventually } from '../support/gateway';

const sendFeishu = `mutation($input: SendFeishuInput!) {
  sendFeishu(input: $input) {
    __typename
    ... on Delivery { ${deliveryFields} }
    ... on Error { message }
    ... on ValidationError { fieldErrors { path message } }
  }
}`;

/** A fresh bot per test that sends more than a few: the gateway paces each bot. */
const newBot = () => ({ token: crypto.randomUUID(), secret: crypto.randomBytes(24).toString('base64url') });
const bot = newBot();
const unsignedBot = crypto.randomUUID();

describeOnStores('sendFeishu', (kind) => {
  let endpoint: FeishuEmulator;
  let gateway: AnyGateway;
  const answers: unknown[] = [];
  const call = async (input: Record<string, unknown>, target = gateway) => {
    const result = await target.graphql(sendFeishu, { input });
    answers.push(result.body);
    expect(result.status).toBe(200);
    expect(result.body.errors).toBeUndefined();
    return result.body.data.sendFeishu;
  };

  beforeAll(async () => {
    endpoint = await startFeishuEmulator({ bots: { [bot.token]: bot.secret, [unsignedBot]: undefined } });
    // Pacing is proven here one message at a time; digests (on by default) fold a backlog: test/digest/.
    gateway = await startGatewayOn(kind, { env: { FEISHU_BASE_URL: endpoint.url, ROBOT_DIGEST: 'off' } });
  });
  afterAll(async () => {
    await gateway.close();
    await endpoint.close();
  });
  beforeEach(() => endpoint.reset());

  it('signs the request, sends the text and answers SENT after the first attempt; the emulator verified the signature', async () => {
    const delivery = await call({ ...bot, content: '磁盘告警: /var 95%', atAll: true });
    expect(delivery).toMatchObject({ __typename: 'Delivery', channel: 'FEISHU', status: 'SENT', attempts: 1, provider: 'feishu' });
    expect(delivery.lastError).toBeNull();
    expect(delivery.recipient).toMatch(/^feishu:[0-9a-f]{12}$/);
    expect(endpoint.rejected).toBe(0);
    expect(endpoint.messages).toHaveLength(1);
    const [received] = endpoint.messages;
    expect(received).toMatchObject({ token: bot.token, signatureVerified: true });
    expect(Math.abs(Number(received!.timestamp) - Date.now() / 1000)).toBeLessThan(60);
    expect(received!.body).toEqual({ msg_type: 'text', content: { text: '磁盘告警: /var 95% <at user_id="all">所有人</at>' } });
    expect(await gateway.store.getDelivery(delivery.id)).toMatchObject({ status: 'SENT', attempts: 1, sealedSecrets: null });
  });

  it('sends POST and CARD with their titles, and a bot without signing', async () => {
    expect((await call({ ...bot, msgType: 'POST', title: '发布', content: 'v1.2 已发布' })).status).toBe('SENT');
    expect((await call({ ...bot, msgType: 'CARD', title: '告警', content: '**CPU** 95%' })).status).toBe('SENT');
    expect((await call({ token: unsignedBot, content: 'plain' })).status).toBe('SENT');
    expect(endpoint.messages.map((message) => message.body.msg_type)).toEqual(['post', 'interactive', 'text']);
    expect(endpoint.messages[0]!.body.content.post.zh_cn).toEqual({ title: '发布', content: [[{ tag: 'text', text: 'v1.2 已发布' }]] });
    expect(endpoint.messages[1]!.body.card.header.title.content).toBe('告警');
    expect(endpoint.messages[2]).toMatchObject({ signatureVerified: false, sign: undefined });
  });

  it('records a wrong secret as FAILED with Feishu’s code and msg', async () => {
    const delivery = await call({ ...bot, secret: `${bot.secret}x`, content: 'x' });
    expect(delivery).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      lastError: { code: '19021', message: 'sign match fail or timestamp is not within one hour from current time' },
      attemptLog: [{ number: 1, outcome: 'PERMANENT', providerCode: '19021' }],
    });
    expect(endpoint.messages).toHaveLength(0);
  });

  it('retries when Feishu is unreachable, without naming the bot URL in the error or the log', async () => {
    const unreachable = await startGatewayOn(kind, { env: { FEISHU_BASE_URL: 'http://127.0.0.1:9' } });
    try {
      const delivery = await call({ ...bot, content: 'x' }, unreachable);
      expect(delivery).toMatchObject({ status: 'RETRYING', attempts: 1, lastError: { code: 'ECONNREFUSED' } });
      const logs = JSON.stringify(unreachable.logs);
      expect(logs).not.toContain(bot.token);
      expect(logs).not.toContain(bot.secret);
    } finally {
      await unreachable.close();
    }
  });

  it.each([
    ['an empty content', { content: '   ' }, [{ path: 'content', message: 'must not be empty' }]],
    ['an empty token', { token: '', content: 'x' }, [{ path: 'token', message: 'must not be empty' }]],
    ['a whole webhook URL as the token', { token: `https://open.feishu.cn/open-apis/bot/v2/hook/${bot.token}`, content: 'x' }, [
      { path: 'token', message: 'must be the part of the webhook URL after /hook/' },
    ]],
    ['POST without a title', { msgType: 'POST', content: 'x' }, [{ path: 'title', message: 'is required for POST' }]],
    ['CARD without a title', { msgType: 'CARD', content: 'x' }, [{ path: 'title', message: 'is required for CARD' }]],
    ['a body over 20 000 bytes', { content: '告'.repeat(6700) }, [
      { path: 'content', message: expect.stringMatching(/the gateway sends at most 20000/) },
    ]],
  ])('refuses %s with a ValidationError per field and records nothing', async (_label, fields, fieldErrors) => {
    const before = await countDeliveries(gateway);
    const requestsBefore = endpoint.requests.length;
    const result = await call({ ...bot, ...fields });
    expect(result.__typename).toBe('ValidationError');
    expect(result.fieldErrors).toEqual(expect.arrayContaining(fieldErrors));
    expect(new Set(result.fieldErrors.map((error: { path: string }) => error.path))).toEqual(new Set(fieldErrors.map((error) => error.path)));
    expect(await countDeliveries(gateway)).toBe(before);
    expect(endpoint.requests.length).toBe(requestsBefore);
  });

  it('takes a body just under the limit (the signature fields counted)', async () => {
    // '告' is 3 bytes in UTF-8; JSON.stringify leaves it as is. 6600 of them: 19 800 bytes + the envelope and signature.
    const delivery = await call({ ...bot, content: '告'.repeat(6600) });
    expect(delivery.status).toBe('SENT');
    expect(endpoint.messages[0]!.bodyBytes).toBeLessThanOrEqual(20_000);
  });

  it('paces exactly under concurrency: 12 messages to one bot at once never exceed 5 in any second, and all end SENT', async () => {
    const stormBot = newBot();
    endpoint.addBot(stormBot.token, stormBot.secret);
    const sent = await Promise.all(
      Array.from({ length: 12 }, (_, n) => call({ ...stormBot, content: `告警 #${n}`, wait: false })),
    );
    expect(sent.every((delivery) => delivery.__typename === 'Delivery')).toBe(true);
    const ids = sent.map((delivery) => delivery.id as string);
    await eventually(async () => {
      const rows = await Promise.all(ids.map((id) => gateway.store.getDelivery(id)));
      return rows.every((row) => row?.status === 'SENT');
    }, 30_000);
    const received = endpoint.messages.filter((message) => message.token === stormBot.token);
    expect(received).toHaveLength(12);
    expect(endpoint.rejected).toBe(0);
    // What Feishu counts: arrivals, 5 a second. The gateway's window (5 in 3.1 s) spreads the 12 over 3 windows.
    expect(busiestWindow(received, 1000)).toBeLessThanOrEqual(5);
    const arrivals = received.map((message) => message.receivedAt).sort((a, b) => a - b);
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThanOrEqual(2 * 3100 - 200);
    expect(new Set(received.map((message) => message.body.content.text)).size).toBe(12);
  }, 40_000);

  it('never shows the token or secret in an API answer, the log or the stored rows', async () => {
    const sent = await call({ ...bot, content: 'secret check', idempotencyKey: 'feishu-1' });
    for (const query of [
      `query($id: ID!) { delivery(id: $id) { ${deliveryFields} } }`,
      `{ deliveries(first: 100, channel: FEISHU) { edges { node { ${deliveryFields} } } } }`,
    ]) {
      const { body } = await gateway.graphql(query, { id: sent.id });
      expect(body.errors).toBeUndefined();
      answers.push(body);
    }
    expect((await call({ ...bot, content: 'secret check', idempotencyKey: 'feishu-1' })).id).toBe(sent.id);
    const everything = JSON.stringify(answers) + JSON.stringify(gateway.logs);
    expect(answers.length).toBeGreaterThan(10);
    expect(everything).not.toContain(bot.token);
    expect(everything).not.toContain(bot.secret);
    const rows = await rawDeliveryRows(gateway);
    expect(JSON.stringify(rows)).not.toContain(bot.token);
    expect(JSON.stringify(rows)).not.toContain(bot.secret);
  });
});
