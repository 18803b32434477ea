import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { startDingTalkEmulator, type DingTalkEmulator } from '../peers/ding-talk-emulator';
import { countDeliveries, describeOnStores, rawDeliveryRows, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryFields } from '../support/gateway';

const sendDing = `mutation($input: SendDingInput!) {
  sendDing(input: $input) {
    __typename
    ... on Delivery { ${deliveryFields} }
    ... on Error { message }
    ... on ValidationError { fieldErrors { path message } }
  }
}`;

const robot = {
  accessToken: `a1b2c3${crypto.randomBytes(16).toString('hex')}`,
  secret: `SEC${crypto.randomBytes(32).toString('hex')}`,
};
const otherRobot = `d4e5f6${crypto.randomBytes(16).toString('hex')}`;

describeOnStores('sendDing', (kind) => {
  let endpoint: DingTalkEmulator;
  let gateway: AnyGateway;
  const answers: unknown[] = [];
  const call = async (input: Record<string, unknown>) => {
    const result = await gateway.graphql(sendDing, { input });
    answers.push(result.body);
    expect(result.status).toBe(200);
    expect(result.body.errors).toBeUndefined();
    return result.body.data.sendDing;
  };

  beforeAll(async () => {
    endpoint = await startDingTalkEmulator({ robots: { [robot.accessToken]: robot.secret, [otherRobot]: 'SECother' } });
    gateway = await startGatewayOn(kind, { env: { DINGTALK_BASE_URL: endpoint.url } });
  });
  afterAll(async () => {
    await gateway.close();
    await endpoint.close();
  });
  beforeEach(() => endpoint.reset());

  it('signs the request, sends the text and answers SENT after the first attempt', async () => {
    const delivery = await call({ ...robot, content: '磁盘告警: /var 95%', atMobiles: ['13800138000'] });
    expect(delivery).toMatchObject({ __typename: 'Delivery', channel: 'DING', status: 'SENT', attempts: 1, provider: 'dingtalk' });
    expect(delivery.sentAt).not.toBeNull();
    expect(delivery.lastError).toBeNull();

    // The emulator accepts a message only when its 加签 signature and timestamp check out.
    expect(endpoint.rejected).toBe(0);
    expect(endpoint.messages).toHaveLength(1);
    const request = endpoint.messages[0];
    expect(request.accessToken).toBe(robot.accessToken);
    expect(Math.abs(Number(request.timestamp) - Date.now())).toBeLessThan(60_000);
    expect(request.body).toEqual({
      msgtype: 'text',
      text: { content: '磁盘告警: /var 95% @13800138000' },
      at: { atMobiles: ['13800138000'], atUserIds: [], isAtAll: false },
    });

    const row = await gateway.store.getDelivery(delivery.id);
    expect(row).toMatchObject({ status: 'SENT', attempts: 1, sealedSecrets: null });
  });

  it('sends MARKDOWN with its title', async () => {
    const delivery = await call({ ...robot, msgType: 'MARKDOWN', title: '发布', content: '## v1.2 已发布' });
    expect(delivery.status).toBe('SENT');
    expect(endpoint.messages.at(-1)!.body).toMatchObject({
      msgtype: 'markdown',
      markdown: { title: '发布', text: '## v1.2 已发布' },
    });
  });

  it('labels the recipient with a short, stable fingerprint of the robot, not its token', async () => {
    const first = await call({ ...robot, content: 'one' });
    const second = await call({ ...robot, content: 'two' });
    const other = await call({ accessToken: otherRobot, secret: 'SECother', content: 'three' });
    expect(other.status).toBe('SENT');
    expect(first.recipient).toMatch(/^robot:[0-9a-f]{12}$/);
    expect(second.recipient).toBe(first.recipient);
    expect(other.recipient).not.toBe(first.recipient);
    expect(robot.accessToken).not.toContain(first.recipient.slice('robot:'.length));

    const { body } = await gateway.graphql(
      'query($r: String!) { deliveries(recipient: $r, first: 50) { edges { node { id } } } }',
      { r: first.recipient },
    );
    answers.push(body);
    const ids = body.data.deliveries.edges.map((edge: { node: { id: string } }) => edge.node.id);
    expect(ids).toEqual(expect.arrayContaining([first.id, second.id]));
    expect(ids).not.toContain(other.id);
  });

  it('records a refusal from DingTalk as FAILED with its errcode and errmsg', async () => {
    const delivery = await call({ ...robot, secret: `${robot.secret}x`, content: 'x' });
    expect(delivery).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      lastError: { code: '310000', message: 'sign not match' },
      attemptLog: [{ number: 1, outcome: 'PERMANENT', providerCode: '310000' }],
    });
    expect(endpoint.messages).toHaveLength(0);
  });

  it('retries when DingTalk is unreachable, without naming the robot URL in the error', async () => {
    const unreachable = await startGatewayOn(kind, { env: { DINGTALK_BASE_URL: 'http://127.0.0.1:9' } });
    try {
      const { body } = await unreachable.graphql(sendDing, { input: { ...robot, content: 'x' } });
      answers.push(body);
      expect(body.data.sendDing).toMatchObject({ status: 'RETRYING', attempts: 1, lastError: { code: 'ECONNREFUSED' } });
      const logs = JSON.stringify(unreachable.logs);
      expect(logs).not.toContain(robot.accessToken);
      expect(logs).not.toContain(robot.secret);
    } finally {
      await unreachable.close();
    }
  });

  it.each([
    ['an empty content', { content: '   ' }, [{ path: 'content', message: 'must not be empty' }]],
    ['an empty accessToken and secret', { accessToken: '', secret: '', content: 'x' }, [
      { path: 'accessToken', message: 'must not be empty' },
      { path: 'secret', message: 'must not be empty' },
    ]],
    ['MARKDOWN without a title', { msgType: 'MARKDOWN', content: 'x' }, [{ path: 'title', message: 'is required for MARKDOWN' }]],
    ['LINK without title or messageUrl', { msgType: 'LINK', content: 'x' }, [
      { path: 'title', message: 'is required for LINK' },
      { path: 'messageUrl', message: 'is required for LINK' },
    ]],
    ['a messageUrl that is not http(s)', { msgType: 'LINK', title: 't', content: 'x', messageUrl: 'javascript:alert(1)' }, [
      { path: 'messageUrl', message: 'must be an http(s) URL' },
    ]],
    ['a body over 20 000 bytes', { content: '告'.repeat(7000) }, [
      { path: 'content', message: expect.stringMatching(/DingTalk accepts at most 20000/) },
    ]],
  ])('refuses %s with a ValidationError per field and records nothing', async (_label, fields, fieldErrors) => {
    const before = await countDeliveries(gateway);
    const requestsBefore = endpoint.requests.length;
    const result = await call({ ...robot, ...fields });
    expect(result.__typename).toBe('ValidationError');
    // Every expected message, and no field beyond the expected ones (a field may carry more than one message).
    expect(result.fieldErrors).toEqual(expect.arrayContaining(fieldErrors));
    expect(new Set(result.fieldErrors.map((error: { path: string }) => error.path))).toEqual(
      new Set(fieldErrors.map((error) => error.path)),
    );
    expect(result.message).toBeTruthy();
    expect(await countDeliveries(gateway)).toBe(before);
    expect(endpoint.requests.length).toBe(requestsBefore);
  });

  it.each([
    ['an unknown field', { ...robot, content: 'x', color: 'red' }],
    ['a missing required field', { ...robot }],
    ['a wrongly typed field', { ...robot, content: 'x', atAll: 'yes' }],
    ['a secret of the wrong type', { accessToken: robot.accessToken, secret: 42, content: 'x' }],
  ])('refuses %s in the variables without quoting the robot credentials back', async (_label, input) => {
    const { body } = await gateway.graphql(sendDing, { input });
    answers.push(body);
    expect(body.data).toBeUndefined();
    expect(body.errors!.length).toBeGreaterThan(0);
    expect(body.errors![0].message).toMatch(/^Variable "\$input" got invalid value/);
    expect(JSON.stringify(body)).not.toContain(robot.accessToken);
    expect(JSON.stringify(body)).not.toContain(robot.secret);
  });

  it('never shows the accessToken or secret in an API answer, the log or the stored payload', async () => {
    const sent = await call({ ...robot, content: 'secret check', idempotencyKey: 'ding-1' });
    for (const query of [
      `query($id: ID!) { delivery(id: $id) { ${deliveryFields} } }`,
      `query($id: ID!) { node(id: $id) { ... on Delivery { ${deliveryFields} } } }`,
      `{ deliveries(first: 100, channel: DING) { edges { node { ${deliveryFields} } } } }`,
    ]) {
      const { body } = await gateway.graphql(query, { id: sent.id });
      expect(body.errors).toBeUndefined();
      answers.push(body);
    }
    // The same key again answers the original delivery.
    expect((await call({ ...robot, content: 'secret check', idempotencyKey: 'ding-1' })).id).toBe(sent.id);

    expect(answers.length).toBeGreaterThan(10);
    const everything = JSON.stringify(answers) + JSON.stringify(gateway.logs);
    expect(everything).not.toContain(robot.accessToken);
    expect(everything).not.toContain(robot.secret);
    const rows = await rawDeliveryRows(gateway);
    expect(rows.length).toBeGreaterThan(0);
    expect(JSON.stringify(rows)).not.toContain(robot.accessToken);
    expect(JSON.stringify(rows)).not.toContain(robot.secret);
  });
});
