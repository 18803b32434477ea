import crypto from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startWeComEmulator, type WeComEmulator } from '../peers/wecom-emulator';
import { deliveryFields, eventually, startGateway, type TestGateway } from '../support/gateway';

const sendWeCom = `mutation($input: SendWeComInput!) { sendWeCom(input: $input) { __typename ... on Delivery { ${deliveryFields} } } }`;

let emulator: WeComEmulator;
let gateway: TestGateway | undefined;
beforeAll(async () => {
  emulator = await startWeComEmulator();
});
afterAll(async () => {
  await emulator?.close();
});
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  emulator.reset();
});

function robot() {
  const key = crypto.randomUUID();
  emulator.addKey(key);
  return key;
}

async function start(env: Record<string, string> = {}) {
  gateway = await startGateway({
    env: { WECOM_BASE_URL: emulator.url, PROVIDER_TIMEOUT_MS: '300', RETRY_BASE_DELAY_MS: '50', RETRY_MAX_DELAY_MS: '100', ...env },
  });
  return gateway;
}

async function send(g: TestGateway, input: Record<string, unknown>) {
  const { body } = await g.graphql(sendWeCom, { input: { wait: false, ...input } });
  expect(body.data?.sendWeCom?.__typename, JSON.stringify(body)).toBe('Delivery');
  return body.data.sendWeCom.id as string;
}

const final = (g: TestGateway, id: string) =>
  eventually(async () => {
    const row = await g.store.getDelivery(id);
    return row && ['SENT', 'FAILED'].includes(row.status) && row;
  }, 15_000);

describe('WeCom faults end as the rules say', () => {
  it('HTTP 5xx on every try: retried with backoff, FAILED after RETRY_MAX_ATTEMPTS, the key erased', async () => {
    const g = await start({ RETRY_MAX_ATTEMPTS: '3' });
    emulator.failNext({ status: 502 }, 3);
    const id = await send(g, { key: robot(), content: 'outage' });
    const row = await final(g, id);
    expect(row).toMatchObject({ status: 'FAILED', attempts: 3, lastErrorCode: 'HTTP_502', sealedSecrets: null, nextAttemptAt: null });
    const log = await g.store.listAttempts(id);
    expect(log.map((attempt) => [attempt.number, attempt.outcome, attempt.providerCode])).toEqual([
      [1, 'RETRYABLE', 'HTTP_502'],
      [2, 'RETRYABLE', 'HTTP_502'],
      [3, 'RETRYABLE', 'HTTP_502'],
    ]);
    expect(emulator.requests).toHaveLength(3);
    expect(emulator.messages).toHaveLength(0);
  });

  it('a WeCom that never answers: each try times out (ETIMEDOUT), then FAILED', async () => {
    const g = await start({ RETRY_MAX_ATTEMPTS: '2' });
    emulator.failNext({ hang: true }, 2);
    const id = await send(g, { key: robot(), content: 'silence' });
    const row = await final(g, id);
    expect(row).toMatchObject({ status: 'FAILED', attempts: 2, lastErrorCode: 'ETIMEDOUT' });
    expect(emulator.requests.filter((request) => request.fault === 'hang')).toHaveLength(2);
  });

  it('an outage of 5xx, timeouts and "system busy" across robots, then recovery: every message arrives exactly once', async () => {
    // A timeout that fires after WeCom took the message makes a duplicate: leave room for a busy test machine.
    const g = await start({ RETRY_MAX_ATTEMPTS: '20', PROVIDER_TIMEOUT_MS: '1500' });
    emulator.failNext({ status: 503 }, 6);
    emulator.failNext({ hang: true }, 3);
    emulator.failNext({ errcode: -1, errmsg: 'system busy' }, 3);
    const keys = [robot(), robot(), robot()];
    const ids: string[] = [];
    for (let n = 0; n < 15; n++) ids.push(await send(g, { key: keys[n % 3], content: `alert ${n}` }));
    const rows = await Promise.all(ids.map((id) => final(g, id)));
    expect(rows.every((row) => row.status === 'SENT')).toBe(true);
    const received = emulator.messages.map((message) => message.body.text.content).sort();
    expect(received).toEqual(Array.from({ length: 15 }, (_, n) => `alert ${n}`).sort());
    expect(rows.reduce((sum, row) => sum + row.attempts, 0)).toBe(15 + 12);
    const logs = JSON.stringify(g.logs);
    for (const key of keys) expect(logs).not.toContain(key);
  });
});
