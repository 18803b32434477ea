import fs from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { legacyRequest } from '../rest/legacy-client';
import type { StoreKind } from '../../src/db/store';
import { backdateDelivery, countDeliveries, describeOnStores, latestDeliveryId, startGatewayOn, type AnyGateway } from '../support/db';
import { testToken } from '../support/gateway';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process';

const otherToken = 'other-token-9876543210';
const minute = 60_000;
const hour = 60 * minute;

const sendSms = `mutation($input: SendSmsInput!) {
  sendSms(input: $input) {
    __typename
    ... on Delivery { id status }
    ... on RateLimitedError { code message retryAfterSeconds }
  }
}`;
const sendEmail = sendSms.replace('$input: SendSmsInput!', '$input: SendEmailInput!').replace('sendSms(', 'sendEmail(');

let gateway: AnyGateway | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

async function start(kind: StoreKind, env: Record<string, string> = {}) {
  gateway = await startGatewayOn(kind, { env: { OPS_TOKENS: `${testToken},${otherToken}`, ...env }, noDispatch: true });
  return gateway;
}

async function sms(g: AnyGateway, mobile: string, content = '123456') {
  const { body } = await g.graphql(sendSms, { input: { mobile, content, wait: false } });
  return body.data.sendSms;
}

/** Moves a delivery back in time, as if it had been sent `ms` ago. */
const age = (g: AnyGateway, id: string, ms: number) => backdateDelivery(g, id, ms);

const smsRows = (g: AnyGateway, mobile: string) => countDeliveries(g, { channel: 'SMS', recipient: mobile });

describeOnStores('SMS per mobile number', (kind) => {
  it('1 a minute: the second code is refused with retryAfterSeconds and not queued; another number is not held', async () => {
    const g = await start(kind);
    expect(await sms(g, '13800138000')).toMatchObject({ __typename: 'Delivery', status: 'QUEUED' });
    // The same number written another way is the same number.
    const refused = await sms(g, '+86 138 0013 8000', '654321');
    expect(refused).toMatchObject({ __typename: 'RateLimitedError', code: 'RATE_LIMITED' });
    // Seconds pass between the two sends on a loaded machine: a few, not the window.
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(55);
    expect(refused.retryAfterSeconds).toBeLessThanOrEqual(60);
    expect(refused.message).toBe(`Too many messages to this number (limit 1 a minute); try again in ${refused.retryAfterSeconds} s`);
    expect(await smsRows(g, '+8613800138000')).toBe(1);
    expect(await sms(g, '13900139000')).toMatchObject({ __typename: 'Delivery' });
  });

  it('5 an hour: the sixth within the hour is refused until the oldest leaves the window', async () => {
    const g = await start(kind);
    const mobile = '+8613700137000';
    for (const minutesAgo of [50, 40, 30, 20, 10]) {
      const sent = await sms(g, mobile);
      expect(sent.__typename).toBe('Delivery');
      await age(g, sent.id, minutesAgo * minute);
    }
    const refused = await sms(g, mobile);
    expect(refused).toMatchObject({ __typename: 'RateLimitedError' });
    expect(refused.message).toContain('limit 5 an hour');
    // The oldest was sent 50 minutes ago: 10 minutes to wait.
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(595);
    expect(refused.retryAfterSeconds).toBeLessThanOrEqual(600);
    expect(await smsRows(g, mobile)).toBe(5);
  });

  it('10 a day: the eleventh within 24 hours is refused; a cancelled code does not count', async () => {
    const g = await start(kind);
    const mobile = '+8613600136000';
    for (const hoursAgo of [23, 21, 19, 17, 15, 13, 11, 9, 7, 5]) {
      const sent = await sms(g, mobile);
      expect(sent.__typename).toBe('Delivery');
      await age(g, sent.id, hoursAgo * hour);
    }
    const refused = await sms(g, mobile);
    expect(refused.message).toContain('limit 10 a day');
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(3599);
    expect(refused.retryAfterSeconds).toBeLessThanOrEqual(3600);
    // Cancel the most recent one: the number has room again.
    const latest = await latestDeliveryId(g, mobile);
    expect(latest).toBeDefined();
    const { body } = await g.graphql('mutation($id: ID!) { cancelDelivery(id: $id) { __typename } }', { id: latest });
    expect(body.data.cancelDelivery.__typename).toBe('Delivery');
    expect(await sms(g, mobile)).toMatchObject({ __typename: 'Delivery' });
  });

  it('the limits are settings: SMS_LIMIT_PER_MINUTE=3 allows three a minute', async () => {
    const g = await start(kind, { SMS_LIMIT_PER_MINUTE: '3' });
    for (let n = 0; n < 3; n++) expect((await sms(g, '13500135000', `00000${n}`)).__typename).toBe('Delivery');
    expect((await sms(g, '13500135000')).__typename).toBe('RateLimitedError');
  });

  it('the legacy route answers code 1004, says when to try again, and sets Retry-After', async () => {
    // Without waiting for the first attempt (no dispatcher runs here).
    const g = await start(kind, { SEND_WAIT_MS: '0' });
    const base = await g.listen();
    const path = '/api/third/sms/sendMsg?mobile=13400134000&content=123456';
    expect((await legacyRequest(base, path)).body.code).toBe(1000);
    const refused = await legacyRequest(base, path.replace('123456', '654321'));
    expect(refused.body.code).toBe(1004);
    expect(refused.body.deliveryId).toBeUndefined();
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(50);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.body.data).toContain(`try again in ${retryAfter} s`);
  });
});

describeOnStores('per-token request rate (RATE_LIMIT_PER_TOKEN_PER_MINUTE)', (kind) => {
  it('is off by default', async () => {
    const g = await start(kind);
    for (let n = 0; n < 30; n++) {
      const { body } = await g.graphql(sendEmail, { input: { to: ['ops@example.com'], content: `#${n}`, wait: false } });
      expect(body.data.sendEmail.__typename).toBe('Delivery');
    }
  });

  it('refuses a token over its rate with RateLimitedError, counting what the database holds; other tokens go on', async () => {
    const g = await start(kind, { RATE_LIMIT_PER_TOKEN_PER_MINUTE: '5' });
    const ids: string[] = [];
    for (let n = 0; n < 5; n++) {
      const { body } = await g.graphql(sendEmail, { input: { to: ['ops@example.com'], content: `#${n}`, wait: false } });
      ids.push(body.data.sendEmail.id);
    }
    const { body: refused } = await g.graphql(sendEmail, { input: { to: ['ops@example.com'], content: 'one too many', wait: false } });
    expect(refused.data.sendEmail).toMatchObject({ __typename: 'RateLimitedError', code: 'RATE_LIMITED' });
    expect(refused.data.sendEmail.message).toMatch(/^Too many requests from this token \(limit 5 a minute per token\)/);
    // Every channel counts towards the token's rate.
    expect((await sms(g, '13300133000')).__typename).toBe('RateLimitedError');
    const { body: other } = await g.graphql(sendEmail, { input: { to: ['ops@example.com'], content: 'x', wait: false } }, { token: otherToken });
    expect(other.data.sendEmail.__typename).toBe('Delivery');
    // Once the oldest is over a minute old (in the database), there is room for one more.
    await age(g, ids[0], minute + 1000);
    const { body: later } = await g.graphql(sendEmail, { input: { to: ['ops@example.com'], content: 'later', wait: false } });
    expect(later.data.sendEmail.__typename).toBe('Delivery');
  });
});

describe('limits across a restart', { timeout: 60_000 }, () => {
  const processes: GatewayProcess[] = [];
  afterAll(() => {
    for (const process of processes) process.kill('SIGKILL');
    if (processes[0]) fs.rmSync(processes[0].dir, { recursive: true, force: true });
  });

  it('a second gateway on the same database still refuses the number and the token', async () => {
    const env = { RATE_LIMIT_PER_TOKEN_PER_MINUTE: '3' };
    const first = await spawnGateway({ env });
    processes.push(first);
    const smsInput = (content: string) => ({ input: { mobile: '13200132000', content, wait: false } });
    expect((await first.graphql(sendSms, smsInput('111111'))).body.data.sendSms.__typename).toBe('Delivery');
    expect((await first.graphql(sendSms, smsInput('222222'))).body.data.sendSms.__typename).toBe('RateLimitedError');
    for (let n = 0; n < 2; n++) {
      const { body } = await first.graphql(sendEmail, { input: { to: ['ops@example.com'], content: `#${n}`, wait: false } });
      expect(body.data.sendEmail.__typename).toBe('Delivery');
    }
    expect(await first.stop()).toEqual({ code: 0, signal: null });

    const second = await spawnGateway({ dir: first.dir, env });
    processes.push(second);
    const number = (await second.graphql(sendSms, smsInput('333333'))).body.data.sendSms;
    expect(number).toMatchObject({ __typename: 'RateLimitedError' });
    const token = (await second.graphql(sendEmail, { input: { to: ['ops@example.com'], content: 'after restart', wait: false } })).body.data.sendEmail;
    expect(token).toMatchObject({ __typename: 'RateLimitedError' });
    expect(token.message).toContain('per token');
    expect(await second.stop()).toEqual({ code: 0, signal: null });
  });
});
