import crypto from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDingTalkEmulator, type DingTalkEmulator } from '../peers/ding-talk-emulator';
import { deliveryFields, eventually, startGateway, type TestGateway } from '../support/gateway';

const sendDing = `mutation($input: SendDingInput!) { sendDing(input: $input) { __typename ... on Delivery { ${deliveryFields} } } }`;

let emulator: DingTalkEmulator;
let gateway: TestGateway | undefined;
beforeAll(async () => {
  emulator = await startDingTalkEmulator();
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
  const accessToken = crypto.randomBytes(16).toString('hex');
  const secret = `SEC${crypto.randomBytes(32).toString('hex')}`;
  emulator.addRobot(accessToken, secret);
  return { accessToken, secret };
}

async function start(env: Record<string, string> = {}) {
  gateway = await startGateway({
    env: { DINGTALK_BASE_URL: emulator.url, PROVIDER_TIMEOUT_MS: '300', RETRY_BASE_DELAY_MS: '50', RETRY_MAX_DELAY_MS: '100', ...env },
  });
  return gateway;
}

async function send(g: TestGateway, input: Record<string, unknown>) {
  const { body } = await g.graphql(sendDing, { input: { wait: false, ...input } });
  expect(body.data?.sendDing?.__typename, JSON.stringify(body)).toBe('Delivery');
  return body.data.sendDing.id as string;
}

const final = (g: TestGateway, id: string) =>
  eventually(async () => {
    const row = await g.store.getDelivery(id);
    return row && ['SENT', 'FAILED'].includes(row.status) && row;
  }, 15_000);

describe('DingTalk faults end as the rules say', () => {
  it('HTTP 5xx on every try: retried with backoff, FAILED after RETRY_MAX_ATTEMPTS, each try in the log', async () => {
    const g = await start({ RETRY_MAX_ATTEMPTS: '3' });
    emulator.failNext({ status: 502 }, 3);
    const id = await send(g, { ...robot(), content: 'outage' });
    const row = await final(g, id);
    expect(row).toMatchObject({ status: 'FAILED', attempts: 3, lastErrorCode: 'HTTP_502', sealedSecrets: null, nextAttemptAt: null });
    const log = await g.store.listAttempts(id);
    expect(log.map((attempt) => [attempt.number, attempt.outcome, attempt.providerCode])).toEqual([
      [1, 'RETRYABLE', 'HTTP_502'],
      [2, 'RETRYABLE', 'HTTP_502'],
      [3, 'RETRYABLE', 'HTTP_502'],
    ]);
    // Backoff: each try starts after the one before it ended plus its wait.
    for (let n = 1; n < log.length; n++) expect(log[n].startedAt).toBeGreaterThanOrEqual(log[n - 1].startedAt + log[n - 1].durationMs + 25);
    expect(emulator.requests).toHaveLength(3);
    expect(emulator.messages).toHaveLength(0);
  });

  it('a DingTalk that never answers: each try times out (ETIMEDOUT), then FAILED', async () => {
    const g = await start({ RETRY_MAX_ATTEMPTS: '2' });
    emulator.failNext({ hang: true }, 2);
    const id = await send(g, { ...robot(), content: 'silence' });
    const row = await final(g, id);
    expect(row).toMatchObject({ status: 'FAILED', attempts: 2, lastErrorCode: 'ETIMEDOUT' });
    const log = await g.store.listAttempts(id);
    expect(log.every((attempt) => attempt.outcome === 'RETRYABLE' && attempt.durationMs >= 250)).toBe(true);
    expect(emulator.requests.filter((request) => request.fault === 'hang')).toHaveLength(2);
  });

  it('an outage of 5xx, timeouts and "system busy" across robots, then recovery: every message arrives exactly once', async () => {
    // A timeout that fires after DingTalk took the message makes a duplicate: leave room for a busy test machine.
    const g = await start({ RETRY_MAX_ATTEMPTS: '20', PROVIDER_TIMEOUT_MS: '1500' });
    emulator.failNext({ status: 503 }, 6);
    emulator.failNext({ hang: true }, 3);
    emulator.failNext({ errcode: -1, errmsg: '系统繁忙' }, 3);
    const robots = [robot(), robot(), robot()];
    const ids: string[] = [];
    for (let n = 0; n < 15; n++) ids.push(await send(g, { ...robots[n % 3], content: `alert ${n}` }));
    const rows = await Promise.all(ids.map((id) => final(g, id)));
    expect(rows.every((row) => row.status === 'SENT')).toBe(true);
    const received = emulator.messages.map((message) => message.body.text.content).sort();
    expect(received).toEqual(Array.from({ length: 15 }, (_, n) => `alert ${n}`).sort());
    const faults = emulator.requests.filter((request) => request.fault || request.errcode === -1);
    expect(faults).toHaveLength(12);
    expect(rows.reduce((sum, row) => sum + row.attempts, 0)).toBe(15 + 12);
  });

  it('"send too fast" (130101): that message waits out the 10-minute mute, others for the robot wait behind it, other robots go on', async () => {
    const g = await start({ RETRY_MAX_ATTEMPTS: '2' });
    const muted = robot();
    emulator.failNext({ errcode: 130101, errmsg: 'send too fast, exceed 20 times per minute' });
    const before = Date.now();
    const first = await send(g, { ...muted, content: 'storm 1' });
    const limited = await eventually(async () => {
      const row = await g.store.getDelivery(first);
      return row?.status === 'RETRYING' && row;
    });
    expect(limited).toMatchObject({ attempts: 1, lastErrorCode: '130101' });
    expect(limited.nextAttemptAt).toBeGreaterThanOrEqual(before + 600_000);
    // Not given up, not lost: the credentials are kept for the try after the mute.
    expect(limited.sealedSecrets).not.toBeNull();
    const second = await send(g, { ...muted, content: 'storm 2' });
    const waiting = await eventually(async () => {
      const row = await g.store.getDelivery(second);
      return row?.status === 'QUEUED' && row.nextAttemptAt! > Date.now() + 60_000 && row;
    });
    expect(waiting.attempts).toBe(0);
    expect(waiting.nextAttemptAt).toBeGreaterThanOrEqual(before + 600_000);
    const other = await send(g, { ...robot(), content: 'other robot' });
    expect((await final(g, other)).status).toBe('SENT');
    expect(emulator.requests.filter((request) => request.accessToken === muted.accessToken)).toHaveLength(1);
  });
});
