import type { AddressObject } from 'mailparser';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deliveryFields, deliveryWhen, eventually, mutationResult, startGateway, type TestGateway } from '../support/gateway';
import { startSmtpSink, type SmtpSink, type SmtpSinkFailure } from '../peers/smtp-sink';

const sendEmail = `mutation($input: SendEmailInput!) {
  sendEmail(input: $input) {
    __typename
    ... on Delivery { ${deliveryFields} }
    ... on Error { message }
  }
}`;

async function send(gateway: TestGateway, input: Record<string, unknown>) {
  const sent = await mutationResult(gateway, sendEmail, input);
  expect(sent.__typename).toBe('Delivery');
  return sent;
}

const addresses = (field: AddressObject | AddressObject[] | undefined) =>
  [field].flat().flatMap((entry) => entry?.value.map((address) => address.address) ?? []);

const mailFrom = '"通知网关" <notify@gateway.test>';

describe('email over SMTP, through the gateway, as a real SMTP server receives it', () => {
  let sink: SmtpSink;
  let gateway: TestGateway;

  beforeAll(async () => {
    sink = await startSmtpSink();
    gateway = await startGateway({
      env: { SMTP_URL: sink.url, MAIL_FROM: mailFrom, SMTP_POOL_SIZE: '2', RETRY_MAX_ATTEMPTS: '100' },
    });
  });
  afterEach(() => sink.clearFailures());
  afterAll(async () => {
    await gateway?.close();
    await sink?.close();
  });

  it('delivers the envelope, headers, Chinese subject and body, and the HTML alternative; bcc only in the envelope', async () => {
    const body = '服务器 db-01 磁盘使用率 97%，请尽快处理。\n第二行：中文内容 unique-body-marker-7f3a';
    const sent = await send(gateway, {
      to: ['ops@example.com', 'dev@example.com'],
      cc: ['lead@example.com'],
      bcc: ['audit@example.com'],
      subject: '【告警】磁盘空间不足 — 生产环境',
      content: body,
      html: '<p>服务器 <b>db-01</b> 磁盘使用率 97%</p>',
    });
    expect(sent).toMatchObject({ status: 'SENT', provider: 'smtp', attempts: 1, lastError: null });

    const received = sink.messagesFor(sent.id);
    expect(received).toHaveLength(1);
    const [{ envelope, parsed }] = received;
    expect(envelope.mailFrom).toBe('notify@gateway.test');
    expect(envelope.rcptTo).toEqual(['ops@example.com', 'dev@example.com', 'lead@example.com', 'audit@example.com']);

    expect(parsed.from?.value).toEqual([{ name: '通知网关', address: 'notify@gateway.test' }]);
    expect(addresses(parsed.to)).toEqual(['ops@example.com', 'dev@example.com']);
    expect(addresses(parsed.cc)).toEqual(['lead@example.com']);
    expect(parsed.bcc).toBeUndefined();
    expect(parsed.headers.has('bcc')).toBe(false);
    expect(parsed.headerLines.some((line) => /audit@example\.com/.test(line.line))).toBe(false);
    expect(parsed.headers.get('x-notify-delivery-id')).toBe(sent.id);

    expect(parsed.subject).toBe('【告警】磁盘空间不足 — 生产环境');
    expect(parsed.text?.trimEnd()).toBe(body);
    expect(parsed.html).toBe('<p>服务器 <b>db-01</b> 磁盘使用率 97%</p>');
    expect(parsed.messageId).toBe(sent.providerMessageId);
    expect(parsed.messageId).toBe(`<${sent.id}@gateway.test>`);

    // The body is the recipients' business, not the log's.
    expect(JSON.stringify(gateway.logs)).not.toContain('unique-body-marker-7f3a');
  });

  it('sends many messages over one pool of at most SMTP_POOL_SIZE connections, each exactly once', async () => {
    const before = sink.connectionCount;
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      ids.push((await send(gateway, { to: [`user${i}@example.com`], subject: `第 ${i} 封`, content: `正文 ${i}`, wait: false })).id);
    }
    await eventually(() => ids.every((id) => sink.messagesFor(id).length === 1));
    // The server has each message a moment before the gateway has recorded its answer.
    for (const id of ids) expect((await deliveryWhen(gateway, id, (d) => d.status !== 'SENDING')).status).toBe('SENT');
    // The first test may have left its connections open: the pool never holds more than two.
    expect(sink.connectionCount).toBeLessThanOrEqual(Math.max(before, 0) + 2);
    expect(sink.openConnections).toBeLessThanOrEqual(2);
  });

  it.each<[string, SmtpSinkFailure]>([
    ['DATA 450', { stage: 'data', code: 450, message: 'Mailbox busy, try later' }],
    ['MAIL FROM 452', { stage: 'mailFrom', code: 452, message: 'Insufficient system storage' }],
    ['MAIL FROM 421 (connection closed)', { stage: 'mailFrom', code: 421, message: 'Too many connections' }],
    ['RCPT TO 451 for every recipient', { stage: 'rcptTo', code: 451, message: 'Greylisted, come back later' }],
  ])('%s: RETRYING with the reply in lastError, then SENT once the server recovers', async (_label, failure) => {
    sink.fail(failure);
    const sent = await send(gateway, { to: ['ops@example.com'], cc: ['dev@example.com'], subject: '重试', content: '暂时失败' });
    const expectedCode = `SMTP_${failure.code}`;
    const retrying = await deliveryWhen(gateway, sent.id, (d) => d.attempts >= 2 && d.status === 'RETRYING');
    expect(retrying.lastError.code).toBe(expectedCode);
    if (failure.stage === 'rcptTo') {
      expect(retrying.lastError.message).toBe(
        `All recipients rejected: ops@example.com: ${failure.code} ${failure.message}; dev@example.com: ${failure.code} ${failure.message}`,
      );
    } else {
      expect(retrying.lastError.message).toBe(`${failure.code} ${failure.message}`);
    }
    expect(sink.messagesFor(sent.id)).toHaveLength(0);

    sink.clearFailures();
    const done = await deliveryWhen(gateway, sent.id, (d) => d.status === 'SENT');
    expect(done.lastError).toBeNull();
    const outcomes = done.attemptLog.map((attempt: { outcome: string }) => attempt.outcome);
    expect(outcomes.slice(0, -1).every((outcome: string) => outcome === 'RETRYABLE')).toBe(true);
    expect(outcomes.at(-1)).toBe('SENT');
    expect(done.attemptLog[0]).toMatchObject({ providerCode: expectedCode });
    expect(sink.messagesFor(sent.id)).toHaveLength(1);
    expect(done.providerMessageId).toBe(`<${sent.id}@gateway.test>`);
  });

  it.each<[string, SmtpSinkFailure, string]>([
    ['DATA 554', { stage: 'data', code: 554, message: '5.7.1 Message rejected as spam' }, '554 5.7.1 Message rejected as spam'],
    ['DATA 552', { stage: 'data', code: 552, message: 'Message size exceeds fixed limit' }, '552 Message size exceeds fixed limit'],
    ['MAIL FROM 550', { stage: 'mailFrom', code: 550, message: 'Sender address rejected' }, '550 Sender address rejected'],
  ])('%s: FAILED at the first attempt with the server reply in lastError', async (_label, failure, reply) => {
    sink.fail(failure);
    const sent = await send(gateway, { to: ['ops@example.com'], subject: '永久失败', content: '不会送达' });
    expect(sent).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      lastError: { code: `SMTP_${failure.code}`, message: reply },
      attemptLog: [{ number: 1, outcome: 'PERMANENT', providerCode: `SMTP_${failure.code}`, providerMessage: reply }],
    });
    expect(sink.messagesFor(sent.id)).toHaveLength(0);
  });

  it('every recipient refused, one of them for good: FAILED, each address listed with its reply', async () => {
    sink.fail({ stage: 'rcptTo', code: 550, recipients: ['gone@example.com'], message: 'No such user' });
    sink.fail({ stage: 'rcptTo', code: 450, recipients: ['full@example.com'], message: 'Mailbox full' });
    const sent = await send(gateway, { to: ['gone@example.com', 'full@example.com'], subject: 's', content: 'x' });
    expect(sent).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      lastError: {
        code: 'SMTP_550',
        message: 'All recipients rejected: gone@example.com: 550 No such user; full@example.com: 450 Mailbox full',
      },
    });
  });

  it('some recipients refused: SENT to the others, and the refusals reported as PARTIALLY_REJECTED', async () => {
    sink.fail({ stage: 'rcptTo', code: 550, recipients: ['gone@example.com'], message: '5.1.1 No such user' });
    sink.fail({ stage: 'rcptTo', code: 452, recipients: ['hidden@example.com'], message: 'Too many recipients' });
    const sent = await send(gateway, {
      to: ['ops@example.com', 'gone@example.com'],
      bcc: ['hidden@example.com'],
      subject: '部分退回',
      content: '部分收件人被拒绝',
    });
    const note =
      '2 of 3 recipients rejected: gone@example.com: 550 5.1.1 No such user; hidden@example.com: 452 Too many recipients';
    expect(sent).toMatchObject({
      status: 'SENT',
      attempts: 1,
      lastError: { code: 'PARTIALLY_REJECTED', message: note },
      attemptLog: [{ outcome: 'SENT', providerMessage: note }],
    });
    const received = sink.messagesFor(sent.id);
    expect(received).toHaveLength(1);
    expect(received[0].envelope.rcptTo).toEqual(['ops@example.com']);
    const row = await gateway.store.getDelivery(sent.id);
    expect(row).toMatchObject({ status: 'SENT', lastErrorCode: 'PARTIALLY_REJECTED', lastErrorMessage: note });
  });

  it('closes its pooled connections when the gateway shuts down', async () => {
    const local = await startGateway({ env: { SMTP_URL: sink.url } });
    const before = sink.openConnections;
    await send(local, { to: ['ops@example.com'], subject: 's', content: 'x' });
    expect(sink.openConnections).toBeGreaterThan(before);
    await local.close();
    await eventually(() => sink.openConnections === before);
  });
});

describe('SMTP server unreachable or refusing connections', () => {
  let sink: SmtpSink;
  const gateways: TestGateway[] = [];
  const gatewayFor = async (url = sink.url, env: Record<string, string> = {}) => {
    const gateway = await startGateway({ env: { SMTP_URL: url, RETRY_MAX_ATTEMPTS: '100', ...env } });
    gateways.push(gateway);
    return gateway;
  };

  beforeAll(async () => {
    sink = await startSmtpSink();
  });
  afterEach(async () => {
    sink.clearFailures();
    await sink.start();
    await Promise.all(gateways.splice(0).map((gateway) => gateway.close()));
  });
  afterAll(() => sink?.close());

  it('connection refused while the server is down: RETRYING, then SENT once it is back on the same port', async () => {
    const gateway = await gatewayFor();
    const port = sink.port;
    await sink.stop();
    const sent = await send(gateway, { to: ['ops@example.com'], subject: '服务器宕机', content: '稍后重试' });
    const retrying = await deliveryWhen(gateway, sent.id, (d) => d.attempts >= 2 && d.status === 'RETRYING');
    expect(retrying.lastError.code).toBe('ESOCKET');
    expect(retrying.lastError.message).toContain('ECONNREFUSED');

    await sink.start();
    expect(sink.port).toBe(port);
    const done = await deliveryWhen(gateway, sent.id, (d) => d.status === 'SENT');
    expect(done.attemptLog[0]).toMatchObject({ outcome: 'RETRYABLE', providerCode: 'ESOCKET' });
    expect(done.attemptLog.at(-1)).toMatchObject({ outcome: 'SENT' });
    expect(sink.messagesFor(sent.id)).toHaveLength(1);
  });

  it('greeting 421: RETRYING, then SENT', async () => {
    const gateway = await gatewayFor();
    sink.fail({ stage: 'connect', code: 421, message: 'Service busy, try again later', times: 2 });
    const sent = await send(gateway, { to: ['ops@example.com'], subject: 's', content: 'x' });
    expect(sent).toMatchObject({
      status: 'RETRYING',
      lastError: { code: 'SMTP_421', message: '421 Service busy, try again later' },
    });
    const done = await deliveryWhen(gateway, sent.id, (d) => d.status === 'SENT');
    expect(done.attemptLog.map((attempt: { outcome: string }) => attempt.outcome)).toEqual(['RETRYABLE', 'RETRYABLE', 'SENT']);
    expect(sink.messagesFor(sent.id)).toHaveLength(1);
  });

  it.each<[string, SmtpSinkFailure, RegExp]>([
    ['no greeting: the connect timeout ends the attempt', { stage: 'connect', stall: true, times: 1 }, /^ETIMEDOUT$/],
    // The dispatcher's deadline (TIMEOUT) and nodemailer's abort (EABORT) fire together; either may be recorded.
    ['no answer to DATA: the attempt is abandoned at its deadline', { stage: 'data', stall: true, times: 1 }, /^(TIMEOUT|EABORT)$/],
  ])('hung server, %s; RETRYING, then SENT exactly once, and the hung connection is dropped', async (_label, failure, code) => {
    const gateway = await gatewayFor(sink.url, { PROVIDER_TIMEOUT_MS: '300' });
    sink.fail(failure);
    const sent = await send(gateway, { to: ['ops@example.com'], subject: '无响应', content: 'x' });
    expect(sent).toMatchObject({ status: 'RETRYING', attempts: 1, lastError: { code: expect.stringMatching(code) } });
    const done = await deliveryWhen(gateway, sent.id, (d) => d.status === 'SENT');
    // The hung attempt, then SENT; on a loaded machine a retry may also miss the 300 ms deadline and be retried again.
    const outcomes = done.attemptLog.map((attempt: { outcome: string }) => attempt.outcome);
    expect(outcomes.at(-1)).toBe('SENT');
    expect(outcomes.slice(0, -1)).toEqual(Array(outcomes.length - 1).fill('RETRYABLE'));
    expect(outcomes.length).toBeGreaterThanOrEqual(2);
    expect(sink.messagesFor(sent.id)).toHaveLength(1);
    // Only the pooled connection that delivered stays open: the abort signal closed the hung one.
    await eventually(() => sink.openConnections === 1);
  });

  it('the SMTP thread dies in the middle of a send: RETRYING, then SENT exactly once by a new thread', async () => {
    const gateway = await gatewayFor();
    sink.fail({ stage: 'data', stall: true, times: 1 });
    const sent = await send(gateway, { to: ['ops@example.com'], subject: '线程', content: 'x', wait: false });
    await eventually(async () => (await gateway.store.getDelivery(sent.id))?.status === 'SENDING');
    await eventually(() => sink.openConnections === 1);
    // The pool's thread (smtp-worker.ts) goes away as a crash would take it.
    const worker = (gateway.channels.EMAIL as unknown as { worker: import('node:worker_threads').Worker }).worker;
    await worker.terminate();
    const done = await deliveryWhen(gateway, sent.id, (d) => d.status === 'SENT');
    expect(done.attemptLog[0]).toMatchObject({ outcome: 'RETRYABLE', providerCode: 'ECONNECTION' });
    expect(done.attemptLog[0].providerMessage).toContain('SMTP worker stopped');
    expect(done.attemptLog.at(-1)).toMatchObject({ outcome: 'SENT' });
    expect(sink.messagesFor(sent.id)).toHaveLength(1);
  });

  it('greeting 554: FAILED at once', async () => {
    const gateway = await gatewayFor();
    sink.fail({ stage: 'connect', code: 554, message: 'No SMTP service here' });
    const sent = await send(gateway, { to: ['ops@example.com'], subject: 's', content: 'x' });
    expect(sent).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      lastError: { code: 'SMTP_554', message: '554 No SMTP service here' },
    });
  });
});

describe('SMTP AUTH with the credentials in SMTP_URL', () => {
  let sink: SmtpSink;
  const gateways: TestGateway[] = [];
  const password = 's3cret p@ss:word';
  const withPassword = (pass: string) =>
    sink.url.replace('smtp://', `smtp://notify%40gateway.test:${encodeURIComponent(pass)}@`);

  beforeAll(async () => {
    sink = await startSmtpSink({ auth: { user: 'notify@gateway.test', pass: password } });
  });
  afterAll(async () => {
    await Promise.all(gateways.map((gateway) => gateway.close()));
    await sink?.close();
  });

  it('logs in with the percent-encoded user and password and delivers', async () => {
    const gateway = await startGateway({ env: { SMTP_URL: withPassword(password) } });
    gateways.push(gateway);
    const sent = await send(gateway, { to: ['ops@example.com'], subject: '认证', content: '已登录' });
    expect(sent.status).toBe('SENT');
    expect(sink.messagesFor(sent.id)).toMatchObject([{ user: 'notify@gateway.test' }]);
  });

  it('a wrong password is FAILED with EAUTH and the 535 reply, and the password shows nowhere', async () => {
    const wrong = 'wrong-password-91c2';
    const gateway = await startGateway({ env: { SMTP_URL: withPassword(wrong) } });
    gateways.push(gateway);
    const sent = await send(gateway, { to: ['ops@example.com'], subject: 's', content: 'x' });
    expect(sent).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      lastError: {
        code: 'EAUTH',
        message: 'SMTP login rejected (check the user and password in SMTP_URL): 535 Authentication credentials invalid',
      },
    });
    expect(sink.messagesFor(sent.id)).toHaveLength(0);
    expect(JSON.stringify(gateway.logs)).not.toContain(wrong);
    expect(JSON.stringify(sent)).not.toContain(wrong);
  });

  it('without credentials the server refuses the sender: FAILED with its 530 reply', async () => {
    const gateway = await startGateway({ env: { SMTP_URL: sink.url } });
    gateways.push(gateway);
    const sent = await send(gateway, { to: ['ops@example.com'], subject: 's', content: 'x' });
    expect(sent).toMatchObject({ status: 'FAILED', lastError: { code: 'SMTP_530' } });
    expect(sent.lastError.message).toMatch(/^530 /);
  });
});

describe('smtps:// (TLS from the first byte) with nodemailer options in the URL', () => {
  it('delivers over TLS when the URL accepts the test certificate, and is refused when it does not', async () => {
    const sink = await startSmtpSink({ secure: true });
    const trusting = await startGateway({ env: { SMTP_URL: `${sink.url}?tls.rejectUnauthorized=false&name=gw.example.test` } });
    const strict = await startGateway({ env: { SMTP_URL: sink.url, RETRY_MAX_ATTEMPTS: '1' } });
    try {
      expect(sink.url).toMatch(/^smtps:\/\//);
      const sent = await send(trusting, { to: ['ops@example.com'], subject: 'TLS', content: '加密传输' });
      expect(sent.status).toBe('SENT');
      expect(sink.messagesFor(sent.id)).toHaveLength(1);

      // A self-signed certificate is not trusted by default: a connection-class failure, retried until out of attempts.
      const refused = await send(strict, { to: ['ops@example.com'], subject: 'TLS', content: 'x' });
      expect(refused.status).toBe('FAILED');
      expect(refused.attemptLog[0].outcome).toBe('RETRYABLE');
      expect(['ESOCKET', 'ETLS']).toContain(refused.lastError.code);
      expect(sink.messagesFor(refused.id)).toHaveLength(0);
    } finally {
      await trusting.close();
      await strict.close();
      await sink.close();
    }
  });
});
