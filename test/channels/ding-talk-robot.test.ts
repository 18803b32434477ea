import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ChannelError } from '../../src/channels/channel';
import { DingTalkRobotChannel, signDingTalk } from '../../src/channels/ding-talk-robot';
import { startDingTalkEmulator, type DingTalkEmulator } from '../peers/ding-talk-emulator';
import { deliveryFields, eventually, startGateway, type TestGateway } from '../support/gateway';

const vector = {
  timestamp: 1582163555000,
  secret: 'SECb90923e19e58b466481e9e7b7a5b4f108a4531abde590ad3967fb29f0eae5c68',
  sign: 'BQKsG+QOCl+bYJOLc6pxDHxjVquzlZPWgvRzeN2J5zY=',
  encoded: 'BQKsG%2BQOCl%2BbYJOLc6pxDHxjVquzlZPWgvRzeN2J5zY%3D',
};

/** A fresh robot per test: the gateway paces each robot, so tests must not share one. */
const newRobot = () => ({
  accessToken: crypto.randomBytes(32).toString('hex'),
  secret: `SEC${crypto.randomBytes(32).toString('hex')}`,
});
const hmac = (timestamp: string, secret: string) =>
  crypto.createHmac('sha256', secret).update(`${timestamp}\n${secret}`).digest('base64');

const context = (deliveryId = 'dlv_test') => ({ deliveryId, attempt: 1, signal: new AbortController().signal });
const textMessage = (robot: { accessToken: string; secret: string }, content = 'hello') => ({
  ...robot,
  msgType: 'TEXT' as const,
  content,
  atMobiles: [],
  atUserIds: [],
  atAll: false,
});

describe('DingTalk 加签 against the published test vector', () => {
  it('computes the raw Base64 signature', () => {
    expect(signDingTalk(vector.timestamp, vector.secret)).toBe(vector.sign);
    expect(signDingTalk(String(vector.timestamp), vector.secret)).toBe(vector.sign);
  });

  it('sends it URL-encoded once, and the emulator reads back the raw form and accepts it', async () => {
    const accessToken = crypto.randomBytes(32).toString('hex');
    // The emulator's clock a few seconds after the vector's timestamp, as if sent in February 2020.
    const emulator = await startDingTalkEmulator({
      robots: { [accessToken]: vector.secret },
      now: () => vector.timestamp + 3000,
    });
    const channel = new DingTalkRobotChannel({ baseUrl: emulator.url, timeoutMs: 2000, now: () => vector.timestamp });
    try {
      await expect(channel.send(textMessage({ accessToken, secret: vector.secret }), context())).resolves.toEqual({});
      expect(emulator.requests).toHaveLength(1);
      const [received] = emulator.messages;
      expect(received.timestamp).toBe('1582163555000');
      expect(received.rawSign).toBe(vector.encoded);
      expect(received.sign).toBe(vector.sign);
      expect(new URLSearchParams(received.rawQuery).get('access_token')).toBe(accessToken);
      expect(received.rawQuery).toContain(`sign=${vector.encoded}`);
    } finally {
      await channel.close();
      await emulator.close();
    }
  });
});

describe('DingTalk errcodes and transport failures', () => {
  let emulator: DingTalkEmulator;
  let channel: DingTalkRobotChannel;
  const robot = newRobot();

  beforeAll(async () => {
    emulator = await startDingTalkEmulator({ robots: { [robot.accessToken]: robot.secret } });
    channel = new DingTalkRobotChannel({ baseUrl: emulator.url, timeoutMs: 1000 });
  });
  afterAll(async () => {
    await channel.close();
    await emulator.close();
  });
  beforeEach(() => emulator.reset());

  const failure = async (message = textMessage(robot)) => {
    const error = await channel.send(message, context()).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(ChannelError);
    const { kind, code, message: text, retryAfterMs } = error as ChannelError;
    expect(text).not.toContain(robot.accessToken);
    expect(text).not.toContain(robot.secret);
    return { kind, code, message: text, retryAfterMs };
  };

  // Every errcode in providers.md §1, with the class the gateway must give it; written out here, not imported.
  const documented: [number, string, 'retryable' | 'rate_limited' | 'permanent'][] = [
    [-1, '系统繁忙', 'retryable'],
    [130101, 'send too fast, exceed 20 times per minute', 'rate_limited'],
    [410100, '发送速度太快而限流', 'rate_limited'],
    [310000, 'sign not match', 'permanent'],
    [310000, 'keywords not in content', 'permanent'],
    [310000, 'ip 10.1.2.3 not in whitelist', 'permanent'],
    [310000, 'description:机器人发送签名不匹配;solution:请确认签名和生成签名的时间戳必须都放在调用的网址中', 'permanent'],
    [300001, 'token is not exist', 'permanent'],
    [300005, 'token is not exist', 'permanent'],
    [400013, '群已被解散', 'permanent'],
    [400101, 'access_token不存在', 'permanent'],
    [400102, '机器人已停用', 'permanent'],
    [400105, '不支持的消息类型', 'permanent'],
    [400106, '机器人不存在', 'permanent'],
    [430101, '含有不安全的外链', 'permanent'],
    [430102, '含有不合适的文本', 'permanent'],
    [430103, '含有不合适的图片', 'permanent'],
    [430104, '含有不合适的内容', 'permanent'],
    [460101, 'message too long, exceed 20000 bytes', 'permanent'],
    [101002, 'message too long', 'permanent'],
    [40035, '缺少参数 json', 'permanent'],
    [43002, '需要POST请求', 'permanent'],
    [43004, '无效的HTTP HEADER Content-Type', 'permanent'],
    [400402, '错误描述:参数 markdown --》 title 缺失', 'permanent'],
    [90030, 'webhook over limit', 'permanent'],
    [999999, 'a code DingTalk never documented', 'permanent'],
  ];

  it.each(documented)('errcode %i (%s) is %s, keeping errcode and errmsg', async (errcode, errmsg, kind) => {
    emulator.failNext({ errcode, errmsg });
    const error = await failure();
    expect(error).toMatchObject({ kind, code: String(errcode), message: errmsg });
    // A rate-limited robot is muted for 10 minutes: the retry must not come sooner.
    expect(error.retryAfterMs).toBe(kind === 'rate_limited' ? 600_000 : undefined);
  });

  it('judges by errcode, not by HTTP 200: a real refusal from the emulator is an error', async () => {
    const error = await failure(textMessage({ ...robot, secret: `${robot.secret}0` }));
    expect(error).toEqual({ kind: 'permanent', code: '310000', message: 'sign not match', retryAfterMs: undefined });
    expect(emulator.requests[0]).toMatchObject({ status: 200, errcode: 310000 });
  });

  it.each([
    [500, 'retryable'],
    [502, 'retryable'],
    [503, 'retryable'],
    [429, 'retryable'],
    [404, 'permanent'],
  ] as const)('HTTP %i without an errcode is %s', async (status, kind) => {
    emulator.failNext({ status });
    expect(await failure()).toMatchObject({ kind, code: `HTTP_${status}`, message: `DingTalk answered HTTP ${status}${kind === 'permanent' ? ' without an errcode' : ''}` });
  });

  it('a timeout is retryable and names no URL', async () => {
    emulator.failNext({ hang: true });
    expect(await failure()).toEqual({
      kind: 'retryable',
      code: 'ETIMEDOUT',
      message: 'DingTalk did not answer within 1000 ms',
      retryAfterMs: undefined,
    });
  });

  it('a refused connection is retryable and names no URL', async () => {
    const closed = await startDingTalkEmulator();
    const { url } = closed;
    await closed.close();
    const unreachable = new DingTalkRobotChannel({ baseUrl: url, timeoutMs: 300 });
    try {
      const error = (await unreachable.send(textMessage(robot), context()).catch((thrown: unknown) => thrown)) as ChannelError;
      expect(error).toBeInstanceOf(ChannelError);
      expect(error).toMatchObject({ kind: 'retryable', code: 'ECONNREFUSED', message: 'DingTalk could not be reached (ECONNREFUSED)' });
      expect(error.message).not.toContain(url);
    } finally {
      await unreachable.close();
    }
  });

  it('never repeats the token or secret even if DingTalk echoes them', async () => {
    emulator.failNext({ errcode: 300001, errmsg: `token ${robot.accessToken} is not exist (secret ${robot.secret})` });
    expect((await failure()).message).toBe('token [redacted] is not exist (secret [redacted])');
  });

  it('re-signs once when DingTalk refuses the timestamp, and sends', async () => {
    emulator.failNext({ errcode: 310000, errmsg: 'invalid timestamp' });
    await expect(channel.send(textMessage(robot), context())).resolves.toEqual({});
    expect(emulator.requests.map((request) => request.errcode)).toEqual([310000, 0]);
    expect(emulator.messages).toHaveLength(1);
  });

  it('reuses one kept-alive connection for consecutive sends', async () => {
    for (let i = 0; i < 3; i++) await channel.send(textMessage(robot), context());
    expect(emulator.messages).toHaveLength(3);
    expect(new Set(emulator.requests.map((request) => request.remotePort)).size).toBe(1);
  });
});

const sendDing = `mutation($input: SendDingInput!) {
  sendDing(input: $input) {
    __typename
    ... on Delivery { ${deliveryFields} }
    ... on Error { message code }
    ... on ValidationError { fieldErrors { path message } }
  }
}`;
const deliveryQuery = `query($id: ID!) { delivery(id: $id) { ${deliveryFields} } }`;

describe('sendDing through the gateway to the DingTalk emulator', () => {
  let emulator: DingTalkEmulator;
  let gateway: TestGateway;
  let emulatorSkewMs = 0;
  const robots: { accessToken: string; secret: string }[] = [];
  const answers: unknown[] = [];

  const robot = (settings: { keywords?: string[] } = {}) => {
    const created = newRobot();
    robots.push(created);
    emulator.addRobot(created.accessToken, { secret: created.secret, ...settings });
    return created;
  };
  const graphql = async (query: string, variables: Record<string, unknown>) => {
    const { status, body } = await gateway.graphql(query, variables);
    answers.push(body);
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    return body.data;
  };
  const send = async (input: Record<string, unknown>) => (await graphql(sendDing, { input })).sendDing;
  const reload = async (id: string) => (await graphql(deliveryQuery, { id })).delivery;

  beforeAll(async () => {
    emulator = await startDingTalkEmulator({ now: () => Date.now() + emulatorSkewMs });
    gateway = await startGateway({
      env: {
        DINGTALK_BASE_URL: emulator.url,
        // Generous for a loaded test machine: only the injected hang may time out.
        PROVIDER_TIMEOUT_MS: '1000',
        // Slow enough to see RETRYING in the mutation's answer before the retry runs.
        RETRY_BASE_DELAY_MS: '800',
        RETRY_MAX_DELAY_MS: '1600',
      },
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await emulator?.close();
  });
  beforeEach(() => {
    emulatorSkewMs = 0;
    emulator.reset();
  });

  it('sends TEXT with at: SENT after 1 attempt, signed as DingTalk checks it', async () => {
    const bot = robot();
    const before = Date.now();
    const delivery = await send({
      ...bot,
      content: '磁盘告警: /var 95%',
      atMobiles: ['13800138000'],
      atUserIds: ['manager4711'],
      atAll: false,
    });
    expect(delivery).toMatchObject({
      __typename: 'Delivery',
      channel: 'DING',
      provider: 'dingtalk',
      status: 'SENT',
      attempts: 1,
      lastError: null,
      attemptLog: [{ number: 1, outcome: 'SENT', providerCode: null }],
    });
    expect(emulator.requests).toHaveLength(1);
    const [received] = emulator.messages;
    expect(received.accessToken).toBe(bot.accessToken);
    expect(received.body).toEqual({
      msgtype: 'text',
      text: { content: '磁盘告警: /var 95% @13800138000 @manager4711' },
      at: { atMobiles: ['13800138000'], atUserIds: ['manager4711'], isAtAll: false },
    });
    expect(received.contentType).toBe('application/json; charset=utf-8');
    // The emulator accepted the signature; check it here too, raw and as it travelled.
    expect(Number(received.timestamp)).toBeGreaterThanOrEqual(before);
    expect(received.sign).toBe(hmac(received.timestamp!, bot.secret));
    expect(received.rawSign).toBe(encodeURIComponent(received.sign!));
    expect(received.rawSign).not.toMatch(/[+/=]/);
  });

  it('sends MARKDOWN with its title and at (isAtAll)', async () => {
    const bot = robot();
    const delivery = await send({ ...bot, msgType: 'MARKDOWN', title: '发布', content: '## v1.2 已发布\n- 修复告警', atAll: true });
    expect(delivery.status).toBe('SENT');
    expect(emulator.messages[0].body).toEqual({
      msgtype: 'markdown',
      markdown: { title: '发布', text: '## v1.2 已发布\n- 修复告警' },
      at: { atMobiles: [], atUserIds: [], isAtAll: true },
    });
  });

  it('sends LINK without at', async () => {
    const bot = robot();
    const delivery = await send({
      ...bot,
      msgType: 'LINK',
      title: '构建失败',
      content: 'main #42 失败',
      messageUrl: 'https://ci.example.com/42',
      picUrl: 'https://ci.example.com/red.png',
    });
    expect(delivery.status).toBe('SENT');
    expect(emulator.messages[0].body).toEqual({
      msgtype: 'link',
      link: { title: '构建失败', text: 'main #42 失败', messageUrl: 'https://ci.example.com/42', picUrl: 'https://ci.example.com/red.png' },
    });
  });

  it('sends ACTION_CARD as a whole-card jump without at', async () => {
    const bot = robot();
    const delivery = await send({
      ...bot,
      msgType: 'ACTION_CARD',
      title: '审批',
      content: '### 请审批发布\nv1.3',
      messageUrl: 'https://deploy.example.com/approve/7',
    });
    expect(delivery.status).toBe('SENT');
    expect(emulator.messages[0].body).toEqual({
      msgtype: 'actionCard',
      actionCard: {
        title: '审批',
        text: '### 请审批发布\nv1.3',
        btnOrientation: '0',
        singleTitle: '阅读全文',
        singleURL: 'https://deploy.example.com/approve/7',
      },
    });
  });

  it('refuses at on LINK and ACTION_CARD, where DingTalk would drop it', async () => {
    const bot = robot();
    const result = await send({
      ...bot,
      msgType: 'LINK',
      title: 't',
      content: 'x',
      messageUrl: 'https://example.com',
      atMobiles: ['13800138000'],
      atAll: true,
    });
    expect(result.__typename).toBe('ValidationError');
    expect(result.fieldErrors).toEqual([
      { path: 'atMobiles', message: 'is only supported for TEXT and MARKDOWN' },
      { path: 'atAll', message: 'is only supported for TEXT and MARKDOWN' },
    ]);
    expect(emulator.requests).toHaveLength(0);
  });

  it.each([
    ['an unknown token', 'token', { errcode: 300001, errmsg: 'token is not exist' }],
    ['a wrong secret', 'secret', { errcode: 310000, errmsg: 'sign not match' }],
    ['a missing keyword', 'keyword', { errcode: 310000, errmsg: 'keywords not in content' }],
  ] as const)('%s is permanent: FAILED at once with 1 attempt and DingTalk’s errcode and errmsg', async (_label, mistake, refusal) => {
    const bot = robot({ keywords: mistake === 'keyword' ? ['告警'] : undefined });
    const input =
      mistake === 'token'
        ? { ...bot, accessToken: `${bot.accessToken}0` }
        : mistake === 'secret'
          ? { ...bot, secret: `${bot.secret}0` }
          : bot;
    const delivery = await send({ ...input, content: 'disk full' });
    expect(delivery).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      nextAttemptAt: null,
      lastError: { code: String(refusal.errcode), message: refusal.errmsg },
      attemptLog: [{ number: 1, outcome: 'PERMANENT', providerCode: String(refusal.errcode), providerMessage: refusal.errmsg }],
    });
    expect(emulator.requests.map((request) => request.errcode)).toEqual([refusal.errcode]);
    expect(emulator.messages).toHaveLength(0);
    // Nothing left to retry with: the credentials were erased.
    expect((await gateway.store.getDelivery(delivery.id))?.sealedSecrets).toBeNull();
  });

  it('HTTP 503 then success: RETRYING, then SENT after 2 attempts', async () => {
    const bot = robot();
    emulator.failNext({ status: 503 });
    const first = await send({ ...bot, content: 'retry me' });
    expect(first).toMatchObject({
      status: 'RETRYING',
      attempts: 1,
      lastError: { code: 'HTTP_503', message: 'DingTalk answered HTTP 503' },
    });
    expect(Date.parse(first.nextAttemptAt)).toBeGreaterThan(Date.now() - 1000);
    const done = await eventually(async () => {
      const delivery = await reload(first.id);
      return delivery.status === 'SENT' && delivery;
    });
    expect(done).toMatchObject({
      attempts: 2,
      lastError: null,
      attemptLog: [
        { number: 1, outcome: 'RETRYABLE', providerCode: 'HTTP_503', providerMessage: 'DingTalk answered HTTP 503' },
        { number: 2, outcome: 'SENT', providerCode: null },
      ],
    });
    expect(emulator.requests.map((request) => request.fault ?? request.errcode)).toEqual(['status', 0]);
    expect(emulator.messages.map((message) => message.body.text.content)).toEqual(['retry me']);
  });

  it('system busy (-1) then success: SENT after 2 attempts', async () => {
    const bot = robot();
    emulator.failNext({ errcode: -1, errmsg: '系统繁忙' });
    const first = await send({ ...bot, content: 'busy' });
    expect(first).toMatchObject({ status: 'RETRYING', lastError: { code: '-1', message: '系统繁忙' } });
    const done = await eventually(async () => {
      const delivery = await reload(first.id);
      return delivery.status === 'SENT' && delivery;
    });
    expect(done.attemptLog.map((attempt: { outcome: string }) => attempt.outcome)).toEqual(['RETRYABLE', 'SENT']);
  });

  it('a timeout is RETRYING, then SENT', async () => {
    const bot = robot();
    emulator.failNext({ hang: true });
    const first = await send({ ...bot, content: 'slow' });
    expect(first).toMatchObject({
      status: 'RETRYING',
      attempts: 1,
      lastError: { code: 'ETIMEDOUT', message: 'DingTalk did not answer within 1000 ms' },
      attemptLog: [{ outcome: 'RETRYABLE', providerCode: 'ETIMEDOUT' }],
    });
    const done = await eventually(async () => {
      const delivery = await reload(first.id);
      return delivery.status === 'SENT' && delivery;
    });
    expect(done.attempts).toBe(2);
    expect(emulator.messages).toHaveLength(1);
  });

  it('send too fast (130101) is rate limited: retried only after the 10-minute mute, and the robot is held meanwhile', async () => {
    const bot = robot();
    emulator.failNext({ errcode: 130101, errmsg: 'send too fast, exceed 20 times per minute' });
    const before = Date.now();
    const first = await send({ ...bot, content: 'storm 1' });
    const after = Date.now();
    expect(first).toMatchObject({
      status: 'RETRYING',
      attempts: 1,
      lastError: { code: '130101', message: 'send too fast, exceed 20 times per minute' },
      attemptLog: [{ outcome: 'RATE_LIMITED', providerCode: '130101' }],
    });
    const retryAt = Date.parse(first.nextAttemptAt);
    expect(retryAt).toBeGreaterThanOrEqual(before + 600_000);
    expect(retryAt).toBeLessThanOrEqual(after + 600_000 + 1600);

    // Another message to the muted robot waits for the mute to end instead of being refused again.
    const second = await send({ ...bot, content: 'storm 2' });
    expect(second).toMatchObject({ status: 'QUEUED', attempts: 0, lastError: null });
    expect(Date.parse(second.nextAttemptAt)).toBeGreaterThanOrEqual(before + 600_000);
    expect(emulator.requests).toHaveLength(1);

    // A different robot is not held up.
    expect((await send({ ...robot(), content: 'other robot' })).status).toBe('SENT');

    for (const id of [first.id, second.id]) {
      await graphql('mutation($id: ID!) { cancelDelivery(id: $id) { __typename } }', { id });
    }
  });

  it('re-signs once after "invalid timestamp"; a clock off by over an hour fails with 310000 and a clock warning', async () => {
    const bot = robot();
    emulator.failNext({ errcode: 310000, errmsg: 'invalid timestamp' });
    expect(await send({ ...bot, content: 'one' })).toMatchObject({ status: 'SENT', attempts: 1 });
    expect(emulator.requests.map((request) => request.errcode)).toEqual([310000, 0]);

    emulator.reset();
    emulatorSkewMs = 2 * 3_600_000;
    const skewed = await send({ ...bot, content: 'two' });
    expect(skewed).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      lastError: { code: '310000', message: 'invalid timestamp' },
    });
    expect(emulator.requests.map((request) => request.errmsg)).toEqual(['invalid timestamp', 'invalid timestamp']);
    expect(gateway.logs.some((line) => String(line.msg).includes('check this host clock'))).toBe(true);
  });

  it('refuses a body over 20,000 bytes up front: ValidationError on content, nothing recorded, nothing sent', async () => {
    const bot = robot();
    const body = (content: string) => ({
      msgtype: 'text',
      text: { content },
      at: { atMobiles: [], atUserIds: [], isAtAll: false },
    });
    const room = 20_000 - Buffer.byteLength(JSON.stringify(body('')));
    // Chinese is 3 bytes a character in UTF-8: the limit is in bytes, not characters.
    const exact = '告'.repeat(Math.floor(room / 3)) + 'x'.repeat(room % 3);
    expect(Buffer.byteLength(JSON.stringify(body(exact)))).toBe(20_000);
    const rows = () => gateway.store.db.$client.prepare('select count(*) as n from deliveries').get() as { n: number };
    const before = rows().n;

    const refused = await send({ ...bot, content: `${exact}x` });
    expect(refused).toMatchObject({ __typename: 'ValidationError', code: 'INVALID_ARGUMENT' });
    expect(refused.fieldErrors).toEqual([
      { path: 'content', message: 'makes a DingTalk message of 20001 bytes; DingTalk accepts at most 20000' },
    ]);
    expect(rows().n).toBe(before);
    expect(emulator.requests).toHaveLength(0);

    const fits = await send({ ...bot, content: exact });
    expect(fits.status).toBe('SENT');
    expect(emulator.messages[0].bodyBytes).toBe(20_000);
  });

  it('never shows an access token or secret in logs, API answers or the database file', async () => {
    // Runs last: covers every delivery above (sent, failed, retried, timed out, rate limited, refused).
    expect(robots.length).toBeGreaterThan(10);
    const list = await graphql(`{ deliveries(first: 100, channel: DING) { edges { node { ${deliveryFields} } } } }`, {});
    expect(list.deliveries.edges.length).toBeGreaterThan(10);

    const logs = JSON.stringify(gateway.logs);
    const apiAnswers = JSON.stringify(answers);
    const database = Buffer.concat(
      ['', '-wal', '-shm']
        .map((suffix) => `${gateway.databasePath}${suffix}`)
        .filter((file) => fs.existsSync(file))
        .map((file) => fs.readFileSync(file)),
    );
    // The reads see what they should: message text is stored in the clear, and answers name the robot label.
    expect(database.includes(Buffer.from('磁盘告警: /var 95%'))).toBe(true);
    expect(apiAnswers).toContain('robot:');
    expect(logs).toContain('delivery sent');
    for (const { accessToken, secret } of robots) {
      for (const leak of [accessToken, secret]) {
        expect(logs).not.toContain(leak);
        expect(apiAnswers).not.toContain(leak);
        expect(database.includes(Buffer.from(leak))).toBe(false);
      }
    }
  });
});
