import crypto from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFeishuEmulator, type FeishuEmulator } from '../peers/feishu-emulator';
import { deliveryFields, eventually, startGateway, type TestGateway } from '../support/gateway';

const sendFeishu = `mutation($input: SendFeishuInput!) { sendFeishu(input: $input) { __typename ... on Delivery { ${deliveryFields} } } }`;

let emulator: FeishuEmulator;
let gateway: TestGateway | undefined;
beforeAll(async () => {
  emulator = await startFeishuEmulator();
});
afterAll(async () => {
  await emulator?.close();
});
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  emulator.reset();
});

function bot() {
  const token = crypto.randomUUID();
  const secret = crypto.randomBytes(24).toString('base64url');
  emulator.addBot(token, secret);
  return { token, secret };
}

async function start(env: Record<string, string> = {}) {
  gateway = await startGateway({
    env: { FEISHU_BASE_URL: emulator.url, PROVIDER_TIMEOUT_MS: '300', RETRY_BASE_DELAY_MS: '50', RETRY_MAX_DELAY_MS: '100', ...env },
  });
  return gateway;
}

async function send(g: TestGateway, input: Record<string, unknown>) {
  const { body } = await g.graphql(sendFeishu, { input: { wait: false, ...input } });
  expect(body.data?.sendFeishu?.__typename, JSON.stringify(body)).toBe('Delivery');
  return body.data.sendFeishu.id as string;
}

const final = (g: TestGateway, id: string) =>
  eventually(async () => {
    const row = await g.store.getDelivery(id);
    return row && ['SENT', 'FAILED'].includes(row.status) && row;
  }, 15_000);

describe('Feishu faults end as the rules say', () => {
  it('HTTP 5xx then 429 then success: retried with backoff, SENT on the third try, each try in the log', async () => {
    const g = await start({ RETRY_MAX_ATTEMPTS: '5' });
    emulator.failNext({ status: 502 });
    emulator.failNext({ status: 429 });
    const id = await send(g, { ...bot(), content: 'outage' });
    const row = await final(g, id);
    expect(row).toMatchObject({ status: 'SENT', attempts: 3, sealedSecrets: null });
    const log = await g.store.listAttempts(id);
    expect(log.map((attempt) => [attempt.number, attempt.outcome, attempt.providerCode])).toEqual([
      [1, 'RETRYABLE', 'HTTP_502'],
      [2, 'RETRYABLE', 'HTTP_429'],
      [3, 'SENT', null],
    ]);
    expect(emulator.messages).toHaveLength(1);
  });

  it('a Feishu that never answers: each try times out (ETIMEDOUT), then FAILED', async () => {
    const g = await start({ RETRY_MAX_ATTEMPTS: '2' });
    emulator.failNext({ hang: true }, 2);
    const row = await final(g, await send(g, { ...bot(), content: 'silence' }));
    expect(row).toMatchObject({ status: 'FAILED', attempts: 2, lastErrorCode: 'ETIMEDOUT', sealedSecrets: null });
  });

  it.each([19022, 19024, 9499])('code %i ends FAILED after one attempt', async (code) => {
    const g = await start();
    emulator.failNext({ code, msg: 'refused' });
    const row = await final(g, await send(g, { ...bot(), content: 'x' }));
    expect(row).toMatchObject({ status: 'FAILED', attempts: 1, lastErrorCode: String(code), sealedSecrets: null });
  });

  it('"frequency limited" (11232): that message rests a minute with its secrets kept, others for the bot wait behind it, other bots go on', async () => {
    const g = await start({ RETRY_MAX_ATTEMPTS: '2' });
    const limitedBot = bot();
    emulator.failNext({ code: 11232 });
    const before = Date.now();
    const first = await send(g, { ...limitedBot, content: 'storm 1' });
    const limited = await eventually(async () => {
      const row = await g.store.getDelivery(first);
      return row?.status === 'RETRYING' && row;
    });
    expect(limited).toMatchObject({ attempts: 1, lastErrorCode: '11232' });
    expect(limited.nextAttemptAt).toBeGreaterThanOrEqual(before + 60_000);
    expect(limited.sealedSecrets).not.toBeNull();
    const second = await send(g, { ...limitedBot, content: 'storm 2' });
    const waiting = await eventually(async () => {
      const row = await g.store.getDelivery(second);
      return row?.status === 'QUEUED' && row.nextAttemptAt! > Date.now() + 30_000 && row;
    });
    expect(waiting.attempts).toBe(0);
    const other = await send(g, { ...bot(), content: 'other bot' });
    expect((await final(g, other)).status).toBe('SENT');
    expect(emulator.requests.filter((request) => request.token === limitedBot.token)).toHaveLength(1);
  });
});
