import crypto from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startWeComEmulator, type WeComEmulator } from '../peers/wecom-emulator';
import { countDeliveries, databaseContents, describeOnStores, rawDeliveryRows, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryFields, eventually, startGateway } from '../support/gateway';

const sendWeCom = `mutation($input: SendWeComInput!) {
  sendWeCom(input: $input) {
    __typename
    ... on Delivery { ${deliveryFields} }
    ... on Error { message code }
    ... on ValidationError { fieldErrors { path message } }
  }
}`;
const deliveryQuery = `query($id: ID!) { delivery(id: $id) { ${deliveryFields} } }`;

/** 682 Chinese characters (3 bytes each) and 2 ASCII: exactly 2048 bytes, WeCom's text limit. */
const text2048 = `${'告'.repeat(682)}xx`;

describeOnStores('sendWeCom', (kind) => {
  let emulator: WeComEmulator;
  let gateway: AnyGateway;
  const keys: string[] = [];
  const answers: unknown[] = [];

  /** A fresh robot per test: the gateway paces each robot, so tests must not share one. */
  const robot = () => {
    const key = crypto.randomUUID();
    keys.push(key);
    emulator.addKey(key);
    return key;
  };
  const graphql = async (query: string, variables: Record<string, unknown>) => {
    const { status, body } = await gateway.graphql(query, variables);
    answers.push(body);
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    return body.data;
  };
  const send = async (input: Record<string, unknown>) => (await graphql(sendWeCom, { input })).sendWeCom;
  const reload = async (id: string) => (await graphql(deliveryQuery, { id })).delivery;

  beforeAll(async () => {
    emulator = await startWeComEmulator();
    gateway = await startGatewayOn(kind, {
      env: { WECOM_BASE_URL: emulator.url, PROVIDER_TIMEOUT_MS: '1000', RETRY_BASE_DELAY_MS: '400', RETRY_MAX_DELAY_MS: '800' },
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await emulator?.close();
  });
  beforeEach(() => emulator.reset());

  it('sends TEXT with mentions: SENT after 1 attempt, and the mentions reach WeCom', async () => {
    const key = robot();
    const delivery = await send({
      key,
      content: '磁盘告警: /var 95%',
      mentionedList: ['zhangsan', '@all'],
      mentionedMobileList: ['13800138000', '+86 139 0013 9000', '@all'],
    });
    expect(delivery).toMatchObject({
      __typename: 'Delivery',
      channel: 'WECOM',
      provider: 'wecom',
      status: 'SENT',
      attempts: 1,
      lastError: null,
      attemptLog: [{ number: 1, outcome: 'SENT', providerCode: null }],
    });
    expect(emulator.requests).toHaveLength(1);
    expect(emulator.messages[0]).toMatchObject({
      key,
      contentType: 'application/json; charset=utf-8',
      body: {
        msgtype: 'text',
        text: {
          content: '磁盘告警: /var 95%',
          mentioned_list: ['zhangsan', '@all'],
          mentioned_mobile_list: ['13800138000', '13900139000', '@all'],
        },
      },
    });
    // The key is gone once the delivery is final.
    expect(await gateway.store.getDelivery(delivery.id)).toMatchObject({ status: 'SENT', sealedSecrets: null });
  });

  it('sends MARKDOWN', async () => {
    const delivery = await send({ key: robot(), msgType: 'MARKDOWN', content: '## v1.2 已发布\n> <@zhangsan> 请验证' });
    expect(delivery.status).toBe('SENT');
    expect(emulator.messages[0].body).toEqual({ msgtype: 'markdown', markdown: { content: '## v1.2 已发布\n> <@zhangsan> 请验证' } });
  });

  it('labels the recipient with a short, stable fingerprint of the key; the whole webhook URL works as the key', async () => {
    const key = robot();
    const first = await send({ key, content: 'one' });
    const pasted = await send({ key: `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=${key}`, content: 'two' });
    const other = await send({ key: robot(), content: 'three' });
    expect([first.status, pasted.status, other.status]).toEqual(['SENT', 'SENT', 'SENT']);
    expect(first.recipient).toMatch(/^robot:[0-9a-f]{12}$/);
    expect(pasted.recipient).toBe(first.recipient);
    expect(other.recipient).not.toBe(first.recipient);
    expect(key.replaceAll('-', '')).not.toContain(first.recipient.slice('robot:'.length));
    expect(emulator.messages.map((message) => message.key)).toEqual([key, key, expect.any(String)]);
    const { body } = await gateway.graphql(
      'query($r: String!) { deliveries(recipient: $r, channel: WECOM, first: 50) { edges { node { id } } } }',
      { r: first.recipient },
    );
    answers.push(body);
    const ids = body.data.deliveries.edges.map((edge: { node: { id: string } }) => edge.node.id);
    expect(ids.sort()).toEqual([first.id, pasted.id].sort());
  });

  it('a wrong key is refused by WeCom: FAILED at once with 93000 and 1 attempt, the key erased', async () => {
    const delivery = await send({ key: crypto.randomUUID(), content: 'disk full' });
    expect(delivery).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      nextAttemptAt: null,
      lastError: { code: '93000', message: expect.stringMatching(/^invalid webhook url, hint: /) },
      attemptLog: [{ number: 1, outcome: 'PERMANENT', providerCode: '93000' }],
    });
    expect(emulator.requests.map((request) => request.errcode)).toEqual([93000]);
    expect(emulator.messages).toHaveLength(0);
    expect((await gateway.store.getDelivery(delivery.id))?.sealedSecrets).toBeNull();
  });

  it('HTTP 503 then success: RETRYING, then SENT after 2 attempts', async () => {
    emulator.failNext({ status: 503 });
    const first = await send({ key: robot(), content: 'retry me' });
    expect(first).toMatchObject({ status: 'RETRYING', attempts: 1, lastError: { code: 'HTTP_503', message: 'WeCom answered HTTP 503' } });
    const done = await eventually(async () => {
      const delivery = await reload(first.id);
      return delivery.status === 'SENT' && delivery;
    });
    expect(done.attemptLog.map((attempt: { outcome: string }) => attempt.outcome)).toEqual(['RETRYABLE', 'SENT']);
    expect(emulator.messages.map((message) => message.body.text.content)).toEqual(['retry me']);
  });

  it('api freq out of limit (45009) is rate limited: retried after a minute, the robot held meanwhile, others not', async () => {
    const key = robot();
    emulator.failNext({ errcode: 45009, errmsg: 'api freq out of limit' });
    const before = Date.now();
    const first = await send({ key, content: 'storm 1' });
    expect(first).toMatchObject({
      status: 'RETRYING',
      attempts: 1,
      lastError: { code: '45009' },
      attemptLog: [{ outcome: 'RATE_LIMITED', providerCode: '45009' }],
    });
    expect(Date.parse(first.nextAttemptAt)).toBeGreaterThanOrEqual(before + 60_000);
    const second = await send({ key, content: 'storm 2' });
    expect(second).toMatchObject({ status: 'QUEUED', attempts: 0 });
    expect(Date.parse(second.nextAttemptAt)).toBeGreaterThanOrEqual(before + 60_000);
    expect((await send({ key: robot(), content: 'other robot' })).status).toBe('SENT');
    expect(emulator.requests).toHaveLength(2);
    for (const id of [first.id, second.id]) {
      await graphql('mutation($id: ID!) { cancelDelivery(id: $id) { __typename } }', { id });
    }
  });

  it.each([
    ['an empty content', { content: '  ' }, [{ path: 'content', message: 'must not be empty' }]],
    ['an empty key', { key: '', content: 'x' }, [{ path: 'key', message: 'must not be empty' }]],
    ['a key that is not a robot key', { key: 'not-a-key', content: 'x' }, [
      { path: 'key', message: 'must be the robot key: the UUID after key= in its webhook URL' },
    ]],
    ['TEXT over 2048 bytes (683 Chinese characters)', { content: `${text2048}x` }, [
      { path: 'content', message: 'is 2049 bytes in UTF-8; WeCom accepts at most 2048 for TEXT' },
    ]],
    ['MARKDOWN over 4096 bytes', { msgType: 'MARKDOWN', content: `${text2048}${text2048}x` }, [
      { path: 'content', message: 'is 4097 bytes in UTF-8; WeCom accepts at most 4096 for MARKDOWN' },
    ]],
    ['mentions on MARKDOWN', { msgType: 'MARKDOWN', content: 'x', mentionedList: ['zhangsan'], mentionedMobileList: ['@all'] }, [
      { path: 'mentionedList', message: 'is only supported for TEXT (in MARKDOWN write <@userid> in the content)' },
      { path: 'mentionedMobileList', message: 'is only supported for TEXT (in MARKDOWN write <@userid> in the content)' },
    ]],
    ['a mobile that is not one', { content: 'x', mentionedMobileList: ['12345'] }, [
      { path: 'mentionedMobileList.0', message: 'must be a valid mobile number (E.164, or 11 digits for mainland China)' },
    ]],
    ['a userid with spaces', { content: 'x', mentionedList: ['zhang san'] }, [
      { path: 'mentionedList.0', message: 'must be a WeCom userid (letters, digits, _ - @ .) or @all' },
    ]],
  ])('refuses %s with a ValidationError per field and records nothing', async (_label, fields, fieldErrors) => {
    const before = await countDeliveries(gateway);
    const result = await send({ key: robot(), ...fields });
    expect(result.__typename).toBe('ValidationError');
    expect(result.fieldErrors).toEqual(fieldErrors);
    expect(await countDeliveries(gateway)).toBe(before);
    expect(emulator.requests).toHaveLength(0);
  });

  it('takes exactly 2048 bytes of TEXT and 4096 of MARKDOWN', async () => {
    expect((await send({ key: robot(), content: text2048 })).status).toBe('SENT');
    expect((await send({ key: robot(), msgType: 'MARKDOWN', content: `${text2048}${text2048}` })).status).toBe('SENT');
    expect(emulator.messages.map((message) => message.contentBytes)).toEqual([2048, 4096]);
  });

  it.each([
    ['an unknown field', { content: 'x', color: 'red' }],
    ['a key of the wrong type', { key: 42, content: 'x' }],
    ['a wrongly typed list', { content: 'x', mentionedList: [{ a: 1 }] }],
  ])('refuses %s in the variables without quoting the key back', async (_label, fields) => {
    const key = robot();
    const { body } = await gateway.graphql(sendWeCom, { input: { key, ...fields } });
    answers.push(body);
    expect(body.data).toBeUndefined();
    expect(body.errors![0].message).toMatch(/^Variable "\$input" got invalid value/);
    expect(JSON.stringify(body)).not.toContain(key);
  });

  it('never shows a key in an API answer, the log or the stored rows', async () => {
    // Runs last: covers every delivery above (sent, failed, retried, rate limited, refused).
    const key = robot();
    const sent = await send({ key, content: 'secret check', idempotencyKey: 'wecom-1' });
    for (const query of [deliveryQuery, `{ deliveries(first: 100, channel: WECOM) { edges { node { ${deliveryFields} } } } }`]) {
      const { body } = await gateway.graphql(query, { id: sent.id });
      expect(body.errors).toBeUndefined();
      answers.push(body);
    }
    expect((await send({ key, content: 'secret check', idempotencyKey: 'wecom-1' })).id).toBe(sent.id);

    expect(keys.length).toBeGreaterThan(10);
    const apiAnswers = JSON.stringify(answers);
    const logs = JSON.stringify(gateway.logs);
    const rows = JSON.stringify(await rawDeliveryRows(gateway));
    // Every table, attempts' provider messages included (and for SQLite the file and its WAL, as written).
    const database = await databaseContents(gateway);
    expect(database.includes(Buffer.from('secret check'))).toBe(true);
    expect(apiAnswers).toContain('robot:');
    expect(logs).toContain('delivery sent');
    expect(rows).toContain('secret check');
    for (const leak of keys) {
      expect(apiAnswers).not.toContain(leak);
      expect(logs).not.toContain(leak);
      expect(rows).not.toContain(leak);
      expect(database.includes(Buffer.from(leak))).toBe(false);
    }
  });
});

describe('sendWeCom pacing under concurrency', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it.each([
    ['the default 19', {}, 19],
    ['WECOM_ROBOT_PER_MINUTE=5', { WECOM_ROBOT_PER_MINUTE: '5' }, 5],
  ] as const)('25 sends at once to one robot with concurrency 16: %s reach WeCom, never a 45009, the rest wait their turn', async (_label, env, limit) => {
    const key = crypto.randomUUID();
    const emulator = await startWeComEmulator({ keys: [key] });
    cleanups.push(() => emulator.close());
    // Pacing alone: with digests (on by default) the waiting ones would be folded (test/digest/).
    const gateway = await startGateway({ env: { WECOM_BASE_URL: emulator.url, DISPATCH_CONCURRENCY: '16', ROBOT_DIGEST: 'off', ...env } });
    cleanups.push(() => gateway.close());

    const sent = await Promise.all(
      Array.from({ length: 25 }, (_, n) => gateway.graphql(sendWeCom, { input: { key, content: `告警 #${n}` } })),
    );
    const deliveries = sent.map(({ body }) => body.data.sendWeCom);
    expect(deliveries.every((delivery) => delivery.__typename === 'Delivery')).toBe(true);

    await eventually(() => gateway.app.dispatcher.inFlightCount === 0 && emulator.messages.length >= limit);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(emulator.messages).toHaveLength(limit);
    expect(emulator.requests).toHaveLength(limit);
    expect(emulator.rejected).toBe(0);
    expect(emulator.busiestMinute).toBeLessThanOrEqual(20);

    const rows = await Promise.all(deliveries.map((delivery) => gateway.store.getDelivery(delivery.id)));
    expect(rows.filter((row) => row!.status === 'SENT')).toHaveLength(limit);
    const waiting = rows.filter((row) => row!.status === 'QUEUED');
    expect(waiting).toHaveLength(25 - limit);
    const firstSend = Math.min(...emulator.messages.map((message) => message.receivedAt));
    for (const row of waiting) {
      expect(row!.attempts).toBe(0);
      expect(row!.nextAttemptAt).toBeGreaterThanOrEqual(firstSend + 60_000 - 1000);
    }
    expect(JSON.stringify(gateway.logs)).not.toContain(key);
  });
});
