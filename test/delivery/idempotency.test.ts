import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import { legacyRequest } from '../rest/legacy-client';
import { backdateDelivery, deliveriesWithKey, describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';
import { eventually, testToken } from '../support/gateway';

const otherToken = 'other-token-9876543210';

const sendEmail = `mutation($input: SendEmailInput!) {
  sendEmail(input: $input) {
    __typename
    ... on Delivery { id status idempotencyKey }
    ... on IdempotencyConflictError { code message conflictingKey: idempotencyKey }
    ... on RateLimitedError { code retryAfterSeconds }
    ... on ValidationError { code fieldErrors { path message } }
  }
}`;
const sendSms = sendEmail.replace('$input: SendEmailInput!', '$input: SendSmsInput!').replace('sendEmail(', 'sendSms(');

let keyCounter = 0;
const freshKey = () => `key-${Date.now()}-${++keyCounter}`;

describeOnStores('Idempotency-Key', (kind) => {
  let sink: SmtpSink;
  let gateway: AnyGateway;
  let base: string;
  beforeAll(async () => {
    sink = await startSmtpSink();
    gateway = await startGatewayOn(kind, { env: { SMTP_URL: sink.url, OPS_TOKENS: `${testToken},${otherToken}` } });
    base = await gateway.listen();
  });
  afterAll(async () => {
    await gateway?.close();
    await sink?.close();
  });
  afterEach(() => {
    sink.clearFailures();
  });

  /** A GraphQL request over the real port. */
  async function post(body: unknown, headers: Record<string, string> = {}, token = testToken) {
    const response = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'OPS-Token': token, ...headers },
      body: JSON.stringify(body),
    });
    return (await response.json()) as { data?: any; errors?: unknown[] };
  }

  const rowsWithKey = (key: string) => deliveriesWithKey(gateway, key);

  it('20 identical GraphQL requests at the same moment: one delivery, one message at the SMTP server', async () => {
    const key = freshKey();
    const input = { to: ['ops@example.com'], subject: 'once', content: 'only once', wait: false };
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => post({ query: sendEmail, variables: { input } }, { 'Idempotency-Key': key })),
    );
    const ids = new Set(answers.map((answer) => answer.data?.sendEmail?.id));
    expect(ids.size).toBe(1);
    const [id] = ids;
    expect(answers.every((answer) => answer.data.sendEmail.idempotencyKey === key)).toBe(true);
    expect(await rowsWithKey(key)).toHaveLength(1);
    await eventually(() => sink.messagesFor(id).length === 1);
    await eventually(async () => (await gateway.store.getDelivery(id))?.status === 'SENT');
    // Anything else would have gone out by now: the delivery is final.
    expect(sink.messagesFor(id)).toHaveLength(1);
    expect((await gateway.store.listAttempts(id)).length).toBe(1);
  });

  it('20 identical legacy REST requests at the same moment: one delivery, one message at the SMTP server', async () => {
    const key = freshKey();
    const path = `/api/third/email/sendMsg?email=oncall%40example.com&content=${encodeURIComponent('磁盘已满 once')}`;
    const answers = await Promise.all(Array.from({ length: 20 }, () => legacyRequest(base, path, { headers: { 'Idempotency-Key': key } })));
    expect(answers.map((answer) => answer.body.code)).toEqual(Array(20).fill(1000));
    const ids = new Set(answers.map((answer) => answer.body.deliveryId));
    expect(ids.size).toBe(1);
    const [id] = ids;
    expect(await rowsWithKey(key)).toHaveLength(1);
    await eventually(async () => (await gateway.store.getDelivery(id!))?.status === 'SENT');
    expect(sink.messagesFor(id!)).toHaveLength(1);
  });

  it('a repeat after the delivery was sent answers the original and sends nothing new', async () => {
    const key = freshKey();
    const input = { to: ['ops@example.com'], subject: 'later repeat', content: 'x' };
    const first = await post({ query: sendEmail, variables: { input } }, { 'Idempotency-Key': key });
    expect(first.data.sendEmail.status).toBe('SENT');
    const again = await post({ query: sendEmail, variables: { input } }, { 'Idempotency-Key': key });
    expect(again.data.sendEmail).toMatchObject({ id: first.data.sendEmail.id, status: 'SENT' });
    expect(sink.messagesFor(first.data.sendEmail.id)).toHaveLength(1);
  });

  it('the same key with a different payload is an IdempotencyConflictError (GraphQL) and code 1006 (REST)', async () => {
    const key = freshKey();
    const input = { to: ['ops@example.com'], subject: 'a', content: 'first', wait: false };
    const first = await post({ query: sendEmail, variables: { input } }, { 'Idempotency-Key': key });
    const conflict = await post({ query: sendEmail, variables: { input: { ...input, content: 'second' } } }, { 'Idempotency-Key': key });
    expect(conflict.data.sendEmail).toMatchObject({ __typename: 'IdempotencyConflictError', code: 'IDEMPOTENCY_CONFLICT', conflictingKey: key });
    // `wait` is how the caller waits, not what is sent: not a different payload.
    const sameWithWait = await post({ query: sendEmail, variables: { input: { ...input, wait: true } } }, { 'Idempotency-Key': key });
    expect(sameWithWait.data.sendEmail.id).toBe(first.data.sendEmail.id);
    const rest = await legacyRequest(base, `/api/third/email/sendMsg?email=ops%40example.com&content=other`, { headers: { 'Idempotency-Key': key } });
    expect(rest.body.code).toBe(1006);
    expect(rest.body.deliveryId).toBeUndefined();
    expect(await rowsWithKey(key)).toHaveLength(1);
  });

  it('the same key on another channel is a conflict, not a second delivery', async () => {
    const key = freshKey();
    await post({ query: sendEmail, variables: { input: { to: ['ops@example.com'], content: 'x', wait: false } } }, { 'Idempotency-Key': key });
    const sms = await post({ query: sendSms, variables: { input: { mobile: '13800138000', content: '123456', wait: false } } }, { 'Idempotency-Key': key });
    expect(sms.data.sendSms.__typename).toBe('IdempotencyConflictError');
    expect(await rowsWithKey(key)).toHaveLength(1);
  });

  it('keys belong to the caller: the same key from another token is its own delivery', async () => {
    const key = freshKey();
    const input = { to: ['ops@example.com'], content: 'per caller', wait: false };
    const mine = await post({ query: sendEmail, variables: { input } }, { 'Idempotency-Key': key });
    const theirs = await post({ query: sendEmail, variables: { input } }, { 'Idempotency-Key': key }, otherToken);
    expect(theirs.data.sendEmail.id).not.toBe(mine.data.sendEmail.id);
    expect((await rowsWithKey(key)).map((row) => row.caller_id).sort()).toEqual(['env:1', 'env:2']);
  });

  it('idempotencyKey in the input wins over the header', async () => {
    const inInput = freshKey();
    const inHeader = freshKey();
    const answer = await post(
      { query: sendEmail, variables: { input: { to: ['ops@example.com'], content: 'x', idempotencyKey: inInput, wait: false } } },
      { 'Idempotency-Key': inHeader },
    );
    expect(answer.data.sendEmail.idempotencyKey).toBe(inInput);
    expect(await rowsWithKey(inHeader)).toHaveLength(0);
  });

  it('a repeated SMS answers its delivery instead of being refused by the per-number limit', async () => {
    const key = freshKey();
    const input = { mobile: '13900139000', content: '654321', wait: false };
    const first = await post({ query: sendSms, variables: { input } }, { 'Idempotency-Key': key });
    expect(first.data.sendSms.__typename).toBe('Delivery');
    const repeat = await post({ query: sendSms, variables: { input } }, { 'Idempotency-Key': key });
    expect(repeat.data.sendSms).toMatchObject({ __typename: 'Delivery', id: first.data.sendSms.id });
    const another = await post({ query: sendSms, variables: { input: { ...input, content: '111111' } } });
    expect(another.data.sendSms).toMatchObject({ __typename: 'RateLimitedError', code: 'RATE_LIMITED' });
  });

  it('keys are kept at least 24 hours: a repeat a day and an hour later answers the original', async () => {
    const key = freshKey();
    const input = { to: ['ops@example.com'], subject: 'yesterday', content: 'x', wait: false };
    const first = await post({ query: sendEmail, variables: { input } }, { 'Idempotency-Key': key });
    const id = first.data.sendEmail.id;
    const dayAndHour = 25 * 3_600_000;
    await backdateDelivery(gateway, id, dayAndHour);
    const repeat = await post({ query: sendEmail, variables: { input } }, { 'Idempotency-Key': key });
    expect(repeat.data.sendEmail.id).toBe(id);
    expect(await rowsWithKey(key)).toHaveLength(1);
  });

  it('an unusable key is a ValidationError and records nothing', async () => {
    const key = 'x'.repeat(256);
    const answer = await post({ query: sendEmail, variables: { input: { to: ['ops@example.com'], content: 'x' } } }, { 'Idempotency-Key': key });
    expect(answer.data.sendEmail).toMatchObject({ __typename: 'ValidationError', fieldErrors: [{ path: 'idempotencyKey' }] });
    expect(await rowsWithKey(key)).toHaveLength(0);
  });
});
