import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/auth';
import { ChannelError, type Channel, type SendContext, type SmsMessage } from '../../src/channels/channel';
import { signDingTalk } from '../../src/channels/ding-talk-robot';
import { errorCatalog } from '../../src/errors';
import { countDeliveries, deliveriesWithKey, describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryFields, testToken } from '../support/gateway';
import { legacyRequest, query, type LegacyRequestOptions } from './legacy-client';

const codes = Object.fromEntries(Object.entries(errorCatalog).map(([name, entry]) => [name, entry.restCode])) as {
  [K in keyof typeof errorCatalog]: number;
};

interface DingRequest {
  accessToken: string;
  timestamp: string;
  sign: string;
  body: Record<string, any>;
}

/** A tiny DingTalk robot endpoint: answers by access token (`reject-*` refuses for good, `flaky-*` fails once). */
async function startDingStub() {
  const received: DingRequest[] = [];
  const seen = new Map<string, number>();
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const url = new URL(request.url!, 'http://stub');
      const accessToken = url.searchParams.get('access_token') ?? '';
      received.push({
        accessToken,
        timestamp: url.searchParams.get('timestamp') ?? '',
        sign: url.searchParams.get('sign') ?? '',
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
      });
      const count = (seen.get(accessToken) ?? 0) + 1;
      seen.set(accessToken, count);
      if (accessToken.startsWith('flaky-') && count === 1) {
        response.writeHead(500).end('busy');
        return;
      }
      const answer = accessToken.startsWith('reject-')
        ? { errcode: 310000, errmsg: 'sign not match' }
        : { errcode: 0, errmsg: 'ok' };
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    received,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Development SMS channel that keeps what it was asked to send (the log channel does not log the content). */
class RecordingSms implements Channel<'SMS'> {
  readonly channel = 'SMS';
  readonly provider = 'log';
  readonly development = true;
  readonly sent: { message: SmsMessage; deliveryId: string }[] = [];
  /** Mobiles whose messages the "provider" refuses for good. */
  readonly refuse = new Set<string>();

  async send(message: SmsMessage, context: SendContext) {
    if (this.refuse.has(message.mobile)) {
      throw new ChannelError('permanent', 'isv.BUSINESS_LIMIT_CONTROL', 'the provider refused this number');
    }
    this.sent.push({ message, deliveryId: context.deliveryId });
    return { providerMessageId: `rec-${context.deliveryId}` };
  }
}

describeOnStores('legacy REST routes over a real port', (kind) => {
  let gateway: AnyGateway;
  let ding: Awaited<ReturnType<typeof startDingStub>>;
  const sms = new RecordingSms();
  let base: string;
  let counter = 0;
  const robot = (prefix = 'robot') => `${prefix}-${++counter}-${crypto.randomBytes(4).toString('hex')}`;
  const robotSecret = 'SEC0123456789abcdef0123456789abcdef';
  const mobile = () => `1390013${String(++counter).padStart(4, '0')}`;
  const send = (rawPath: string, options?: LegacyRequestOptions) => legacyRequest(base, rawPath, options);
  const deliveryCount = () => countDeliveries(gateway);
  const outboxMail = async (deliveryId: string) =>
    simpleParser(fs.readFileSync(path.join(gateway.config.dataDir, 'outbox', `${deliveryId}.eml`)));
  /** The plain-text part as the recipient reads it (MIME may add one line break at the end). */
  const mailText = async (deliveryId: string) => ((await outboxMail(deliveryId)).text ?? '').replace(/\n$/, '');
  const dingFor = (accessToken: string) => ding.received.filter((request) => request.accessToken === accessToken);

  beforeAll(async () => {
    ding = await startDingStub();
    gateway = await startGatewayOn(kind, { env: { DINGTALK_BASE_URL: ding.url }, channels: { SMS: sms } });
    base = await gateway.listen();
  });
  afterAll(async () => {
    await gateway.close();
    await ding.close();
  });

  describe('the three routes, GET with a query string', () => {
    it('ding: signs and sends the text to the robot, answers 1000 "sent" with the delivery id', async () => {
      const accessToken = robot();
      const { status, headers, body } = await send(
        `/api/third/ding/sendMsg?${query({ accessToken, secret: robotSecret, content: '服务器告警: disk full' })}`,
      );
      expect(status).toBe(200);
      expect(headers['content-type']).toMatch(/^application\/json/);
      expect(body).toEqual({ code: 1000, data: 'sent', deliveryId: expect.stringMatching(/^dlv_/) });
      const [request] = dingFor(accessToken);
      expect(request!.body).toMatchObject({ msgtype: 'text', text: { content: '服务器告警: disk full' } });
      expect(request!.sign).toBe(signDingTalk(request!.timestamp, robotSecret));
      expect((await gateway.store.getDelivery(body.deliveryId!))?.status).toBe('SENT');
    });

    it('email: writes the message to the outbox, subject from the first line of content', async () => {
      const { body } = await send(
        `/api/third/email/sendMsg?${query({ email: 'ops@example.com', content: '\n  备份失败  \nsecond line' })}`,
      );
      expect(body).toMatchObject({ code: 1000, data: 'sent' });
      const mail = await outboxMail(body.deliveryId!);
      expect(mail.subject).toBe('备份失败');
      expect(await mailText(body.deliveryId!)).toBe('\n  备份失败  \nsecond line');
      expect((mail.to as { text: string }).text).toBe('ops@example.com');
    });

    it('sms: hands the number (E.164) and the content to the SMS channel', async () => {
      const to = mobile();
      const { body } = await send(`/api/third/sms/sendMsg?${query({ mobile: to, content: '您的验证码是 123456' })}`);
      expect(body).toMatchObject({ code: 1000, data: 'sent' });
      const sent = sms.sent.find((entry) => entry.deliveryId === body.deliveryId);
      expect(sent?.message).toMatchObject({ mobile: `+86${to}`, content: '您的验证码是 123456' });
    });

    it('shows its deliveries in the GraphQL deliveries list like any other', async () => {
      const { body } = await send(`/api/third/email/sendMsg?${query({ email: 'list@example.com', content: 'listed' })}`);
      const { body: graph } = await gateway.graphql(
        `{ deliveries(first: 50, channel: EMAIL) { edges { node { ${deliveryFields} } } } }`,
      );
      const node = graph.data.deliveries.edges.map((edge: any) => edge.node).find((n: any) => n.id === body.deliveryId);
      expect(node).toMatchObject({ channel: 'EMAIL', status: 'SENT', attempts: 1, recipient: 'list@example.com', provider: 'file-outbox' });
      const { body: one } = await gateway.graphql(`query($id: ID!) { delivery(id: $id) { id status } }`, { id: body.deliveryId });
      expect(one.data.delivery).toEqual({ id: body.deliveryId, status: 'SENT' });
    });
  });

  describe('parameters in a body', () => {
    it('POST with a JSON body', async () => {
      const accessToken = robot();
      const { body } = await send('/api/third/ding/sendMsg', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ accessToken, secret: robotSecret, content: 'json "quoted" & {braces}' }),
      });
      expect(body).toMatchObject({ code: 1000, data: 'sent' });
      expect(dingFor(accessToken)[0]!.body.text.content).toBe('json "quoted" & {braces}');
    });

    it('GET with a JSON body (the original documentation sends Content-Type: application/json)', async () => {
      const { body } = await send('/api/third/email/sendMsg', {
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify({ email: 'get-json@example.com', content: 'GET 带 JSON' }),
      });
      expect(body).toMatchObject({ code: 1000, data: 'sent' });
      expect(await mailText(body.deliveryId!)).toBe('GET 带 JSON');
    });

    it('takes a JSON number as the mobile', async () => {
      const to = mobile();
      const { body } = await send('/api/third/sms/sendMsg', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"mobile": ${to}, "content": "code 4711"}`,
      });
      expect(body).toMatchObject({ code: 1000 });
      expect(sms.sent.find((entry) => entry.deliveryId === body.deliveryId)?.message.mobile).toBe(`+86${to}`);
    });

    it('POST with a form body', async () => {
      const to = mobile();
      const { body } = await send('/api/third/sms/sendMsg', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `mobile=${to}&content=${encodeURIComponent('验证码 7788 😀 a&b=c')}`,
      });
      expect(body).toMatchObject({ code: 1000, data: 'sent' });
      expect(sms.sent.find((entry) => entry.deliveryId === body.deliveryId)?.message.content).toBe('验证码 7788 😀 a&b=c');
    });

    it('GET with a form body, decoded with its charset (GBK here)', async () => {
      const { body } = await send('/api/third/email/sendMsg', {
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=GBK' },
        body: 'email=gbk@example.com&content=%D6%D0%CE%C4+ok',
      });
      expect(body).toMatchObject({ code: 1000 });
      expect(await mailText(body.deliveryId!)).toBe('中文 ok');
    });

    it('POST with a multipart/form-data body', async () => {
      const form = new FormData();
      form.set('email', 'multipart@example.com');
      form.set('content', 'multipart 内容');
      const response = await fetch(`${base}/api/third/email/sendMsg`, { method: 'POST', headers: { 'OPS-Token': testToken }, body: form });
      const body = await response.json();
      expect(body).toMatchObject({ code: 1000 });
      expect(await mailText(body.deliveryId)).toBe('multipart 内容');
    });

    it('GET with Content-Type: application/json and no body reads the query string', async () => {
      const { body } = await send(`/api/third/email/sendMsg?${query({ email: 'q@example.com', content: 'no body' })}`, {
        headers: { 'content-type': 'application/json' },
      });
      expect(body).toMatchObject({ code: 1000 });
    });

    it('a parameter in both the query string and the body: the query string wins (servlet rule)', async () => {
      const { body } = await send(`/api/third/email/sendMsg?${query({ content: 'from the query' })}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'both@example.com', content: 'from the body' }),
      });
      expect(body).toMatchObject({ code: 1000 });
      expect(await mailText(body.deliveryId!)).toBe('from the query');
    });

    it('a name twice in the query string: the first one wins', async () => {
      const { body } = await send('/api/third/email/sendMsg?email=twice@example.com&content=first&content=second');
      expect(await mailText(body.deliveryId!)).toBe('first');
    });

    it('a body of another type (text/plain) is ignored, and says so when a parameter is then missing', async () => {
      const { body } = await send('/api/third/email/sendMsg', {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'email=plain@example.com&content=x',
      });
      expect(body.code).toBe(codes.INVALID_ARGUMENT);
      expect(body.data).toBe(
        'email: is required; content: is required (a text/plain body is not read: send the parameters in the query string, as JSON or as a form)',
      );
    });
  });

  describe('hostile encodings arrive exactly as encoded', () => {
    // raw +, %2B, %26, %3D, %25, %0A, a 4-byte emoji, Chinese, lower-case hex
    const raw = 'a+b%2Bc%26d%3De%25f%0Ag%F0%9F%98%80%E4%B8%AD%e6%96%87';
    const decoded = 'a b+c&d=e%f\ng😀中文';

    it('ding', async () => {
      const accessToken = robot();
      const { body } = await send(`/api/third/ding/sendMsg?accessToken=${accessToken}&secret=${robotSecret}&content=${raw}`);
      expect(body).toMatchObject({ code: 1000 });
      expect(dingFor(accessToken)[0]!.body.text.content).toBe(decoded);
    });

    it('email', async () => {
      const { body } = await send(`/api/third/email/sendMsg?email=hostile%40example.com&content=${raw}`);
      expect(body).toMatchObject({ code: 1000 });
      expect(await mailText(body.deliveryId!)).toBe(`${decoded}`);
    });

    it('sms (single line: no %0A)', async () => {
      const { body } = await send(`/api/third/sms/sendMsg?mobile=${mobile()}&content=${raw.replace('%0A', '')}`);
      expect(body).toMatchObject({ code: 1000 });
      expect(sms.sent.find((entry) => entry.deliveryId === body.deliveryId)?.message.content).toBe(decoded.replace('\n', ''));
    });

    it('the same in a form body', async () => {
      const { body } = await send('/api/third/email/sendMsg', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `email=form-hostile@example.com&content=${raw}`,
      });
      expect(await mailText(body.deliveryId!)).toBe(`${decoded}`);
    });

    it('characters a client may leave unencoded (" < > { } | ^ ` \\)', async () => {
      const accessToken = robot();
      const { body } = await send(`/api/third/ding/sendMsg?accessToken=${accessToken}&secret=${robotSecret}&content="<x>{|}^\`\\`);
      expect(body).toMatchObject({ code: 1000 });
      expect(dingFor(accessToken)[0]!.body.text.content).toBe('"<x>{|}^`\\');
    });

    it.each([
      ['a truncated UTF-8 sequence (%E4%B8)', 'content=%E4%B8', 'content: is not valid UTF-8 once percent-decoded (in the query string)'],
      ['a lone continuation byte (%80)', 'content=ok%80', 'content: is not valid UTF-8 once percent-decoded (in the query string)'],
      ['%ZZ', 'content=100%ZZ', 'content: malformed percent-encoding "%ZZ" in the query string; a literal % is sent as %25'],
      ['a bare % at the end', 'content=100%', 'content: malformed percent-encoding "%" in the query string; a literal % is sent as %25'],
      ['%4 at the end', 'content=x%4', 'content: malformed percent-encoding "%4" in the query string; a literal % is sent as %25'],
      ['a malformed parameter name', 'con%ZZtent=x', 'query string: malformed percent-encoding "%ZZ" in a parameter name; a literal % is sent as %25'],
    ])('refuses %s with the invalid-parameter code, recording nothing', async (_label, rawQuery, data) => {
      const before = await deliveryCount();
      const { status, body } = await send(`/api/third/email/sendMsg?email=a%40example.com&${rawQuery}`);
      expect(status).toBe(200);
      expect(body).toEqual({ code: codes.INVALID_ARGUMENT, data });
      expect(await deliveryCount()).toBe(before);
    });

    it('refuses a malformed percent sequence in a form body', async () => {
      const { body } = await send('/api/third/email/sendMsg', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'email=a%40example.com&content=%E4%B8',
      });
      expect(body).toEqual({ code: codes.INVALID_ARGUMENT, data: 'content: is not valid UTF-8 once percent-decoded (in the form body)' });
    });
  });

  describe('missing and empty parameters', () => {
    const complete = () => ({
      ding: { accessToken: robot(), secret: robotSecret, content: 'hello' },
      email: { email: 'someone@example.com', content: 'hello' },
      sms: { mobile: mobile(), content: 'hello' },
    });
    const cases = (['ding', 'email', 'sms'] as const).flatMap((route) =>
      Object.keys(complete()[route]).map((name) => [route, name] as const),
    );

    it.each(cases)('%s without %s: invalid parameter naming it, nothing recorded', async (route, name) => {
      const params: Record<string, string> = { ...complete()[route] };
      delete params[name];
      const before = await deliveryCount();
      const { body } = await send(`/api/third/${route}/sendMsg?${query(params)}`);
      expect(body).toEqual({ code: codes.INVALID_ARGUMENT, data: `${name}: is required` });
      expect(await deliveryCount()).toBe(before);
    });

    const emptyMessages: Record<string, string> = {
      'ding accessToken': 'accessToken: must not be empty',
      'ding secret': 'secret: must not be empty',
      'ding content': 'content: must not be empty',
      'email email': 'email: must list at least one address',
      'email content': 'content: must not be empty',
      'sms mobile': 'mobile: must be a valid mobile number (E.164, or 11 digits for mainland China)',
      'sms content': 'content: must not be empty',
    };
    it.each(cases)('%s with %s sent empty: invalid parameter naming it, nothing recorded', async (route, name) => {
      const params: Record<string, string> = { ...complete()[route], [name]: '' };
      const before = await deliveryCount();
      const { body } = await send(`/api/third/${route}/sendMsg?${query(params)}`);
      expect(body).toEqual({ code: codes.INVALID_ARGUMENT, data: emptyMessages[`${route} ${name}`] });
      expect(await deliveryCount()).toBe(before);
    });

    it('names every missing parameter at once', async () => {
      const { body } = await send('/api/third/ding/sendMsg');
      expect(body).toEqual({ code: codes.INVALID_ARGUMENT, data: 'accessToken: is required; secret: is required; content: is required' });
    });

    it('names the bad address of a list in the legacy parameter name', async () => {
      const { body } = await send(`/api/third/email/sendMsg?${query({ email: 'good@example.com;not-an-address', content: 'x' })}`);
      expect(body).toEqual({ code: codes.INVALID_ARGUMENT, data: 'email (item 2): must be an email address' });
    });

    it('refuses malformed JSON and a JSON body that is not an object, without quoting the body', async () => {
      const malformed = await send('/api/third/ding/sendMsg', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"accessToken": "SECRET-in-body", ',
      });
      expect(malformed.body.code).toBe(codes.INVALID_ARGUMENT);
      expect(malformed.body.data).toMatch(/^body: is not valid JSON/);
      expect(malformed.text).not.toContain('SECRET-in-body');
      const array = await send('/api/third/ding/sendMsg', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '["content"]',
      });
      expect(array.body).toEqual({ code: codes.INVALID_ARGUMENT, data: 'body: must be a JSON object' });
    });

    it('refuses a JSON object where a text parameter belongs', async () => {
      const { body } = await send('/api/third/email/sendMsg', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'a@example.com', content: { text: 'x' } }),
      });
      expect(body).toEqual({ code: codes.INVALID_ARGUMENT, data: 'content: must be a string' });
    });
  });

  describe('optional parameters old callers never sent', () => {
    it('email: several addresses separated by commas or semicolons, and an explicit subject', async () => {
      const { body } = await send(
        `/api/third/email/sendMsg?${query({ email: 'a@example.com; b@example.com,c@example.com,', subject: '周报', content: 'body' })}`,
      );
      expect(body).toMatchObject({ code: 1000 });
      const mail = await outboxMail(body.deliveryId!);
      expect(mail.subject).toBe('周报');
      expect((mail.to as { value: { address: string }[] }).value.map((entry) => entry.address)).toEqual([
        'a@example.com',
        'b@example.com',
        'c@example.com',
      ]);
      expect((await gateway.store.getDelivery(body.deliveryId!))?.recipient).toBe('a@example.com, b@example.com, c@example.com');
    });

    it('email: a long first line becomes a 60-character subject ending in …', async () => {
      const line = '告警'.repeat(40);
      const { body } = await send(`/api/third/email/sendMsg?${query({ email: 'long@example.com', content: `${line}\nmore` })}`);
      expect((await outboxMail(body.deliveryId!)).subject).toBe(`${line.slice(0, 59)}…`);
    });

    it('ding: msgType in DingTalk spelling (markdown) with a title', async () => {
      const accessToken = robot();
      const { body } = await send(
        `/api/third/ding/sendMsg?${query({ accessToken, secret: robotSecret, content: '## 标题\n- item', msgType: 'markdown', title: 'T' })}`,
      );
      expect(body).toMatchObject({ code: 1000 });
      expect(dingFor(accessToken)[0]!.body).toMatchObject({ msgtype: 'markdown', markdown: { title: 'T', text: '## 标题\n- item' } });
    });

    it('ding: a markdown message without title is refused by the service, named by parameter', async () => {
      const { body } = await send(
        `/api/third/ding/sendMsg?${query({ accessToken: robot(), secret: robotSecret, content: 'x', msgType: 'markdown' })}`,
      );
      expect(body).toEqual({ code: codes.INVALID_ARGUMENT, data: 'title: is required for MARKDOWN' });
    });
  });

  describe('every code of the table', () => {
    it('1002 for no token and for a wrong token, before reading any parameter', async () => {
      for (const token of [null, 'wrong-token', '']) {
        const { status, body } = await send(`/api/third/email/sendMsg?${query({ email: 'a@example.com', content: 'x' })}`, { token });
        expect(status).toBe(200);
        expect(body).toEqual({ code: codes.UNAUTHENTICATED, data: errorCatalog.UNAUTHENTICATED.description });
      }
      const malformed = await send('/api/third/email/sendMsg?content=%ZZ', { token: 'wrong-token' });
      expect(malformed.body.code).toBe(codes.UNAUTHENTICATED);
    });

    it('1003 for a token that may not use the channel', async () => {
      const token = `limited-${crypto.randomBytes(8).toString('hex')}`;
      await gateway.store.insertToken({
        id: `tok_${crypto.randomBytes(4).toString('hex')}`,
        name: `email-only-${counter++}`,
        tokenHash: hashToken(token),
        scopes: JSON.stringify({ channels: ['EMAIL'], read: 'own' }),
        createdAt: Date.now(),
        revokedAt: null,
        lastUsedAt: null,
      });
      const before = await deliveryCount();
      const { body } = await send(`/api/third/ding/sendMsg?${query({ accessToken: robot(), secret: robotSecret, content: 'x' })}`, { token });
      expect(body).toEqual({ code: codes.FORBIDDEN, data: 'This token may not send on DING' });
      expect(await deliveryCount()).toBe(before);
      const allowed = await send(`/api/third/email/sendMsg?${query({ email: 'a@example.com', content: 'x' })}`, { token });
      expect(allowed.body.code).toBe(1000);
    });

    it('1004 for a second SMS to the same number within the minute, saying when to try again', async () => {
      const to = mobile();
      const first = await send(`/api/third/sms/sendMsg?${query({ mobile: to, content: '111111' })}`);
      expect(first.body.code).toBe(1000);
      const before = await deliveryCount();
      const second = await send(`/api/third/sms/sendMsg?${query({ mobile: to, content: '222222' })}`);
      expect(second.body.code).toBe(codes.RATE_LIMITED);
      expect(second.body.deliveryId).toBeUndefined();
      const seconds = Number(/try again in (\d+) s/.exec(second.body.data)?.[1]);
      expect(seconds).toBeGreaterThan(0);
      expect(seconds).toBeLessThanOrEqual(60);
      expect(second.headers['retry-after']).toBe(String(seconds));
      expect(await deliveryCount()).toBe(before);
    });

    it('1005 when the provider refuses the first attempt for good: its reason, and the recorded delivery', async () => {
      const accessToken = robot('reject');
      const { body } = await send(`/api/third/ding/sendMsg?${query({ accessToken, secret: robotSecret, content: 'x' })}`);
      expect(body).toEqual({ code: codes.PROVIDER_REJECTED, data: 'sign not match (310000)', deliveryId: expect.stringMatching(/^dlv_/) });
      expect((await gateway.store.getDelivery(body.deliveryId!))?.status).toBe('FAILED');

      const to = mobile();
      sms.refuse.add(`+86${to}`);
      const refused = await send(`/api/third/sms/sendMsg?${query({ mobile: to, content: '333333' })}`);
      expect(refused.body).toMatchObject({
        code: codes.PROVIDER_REJECTED,
        data: 'the provider refused this number (isv.BUSINESS_LIMIT_CONTROL)',
      });
    });

    it('1000 "queued for retry" when the first attempt failed but will be retried, then sent', async () => {
      const accessToken = robot('flaky');
      const { body } = await send(`/api/third/ding/sendMsg?${query({ accessToken, secret: robotSecret, content: 'retry me' })}`);
      expect(body).toEqual({ code: 1000, data: 'queued for retry: DingTalk answered HTTP 500 (HTTP_500)', deliveryId: expect.any(String) });
      const { body: graph } = await gateway.graphql(`query($id: ID!) { delivery(id: $id) { status attempts } }`, { id: body.deliveryId });
      expect(graph.data.delivery.attempts).toBeGreaterThanOrEqual(1);
      await expect.poll(async () => (await gateway.store.getDelivery(body.deliveryId!))?.status, { timeout: 5000 }).toBe('SENT');
      expect(dingFor(accessToken).map((request) => request.body.text.content)).toEqual(['retry me', 'retry me']);
    });

    it('1006 for an idempotency key reused with another payload; the same payload returns the first delivery', async () => {
      const key = `key-${crypto.randomUUID()}`;
      const route = (content: string) => `/api/third/email/sendMsg?${query({ email: 'idem@example.com', content })}`;
      const first = await send(route('once'), { headers: { 'Idempotency-Key': key } });
      expect(first.body).toMatchObject({ code: 1000, data: 'sent' });
      const again = await send(route('once'), { headers: { 'Idempotency-Key': key } });
      expect(again.body).toEqual(first.body);
      const conflict = await send(route('twice'), { headers: { 'Idempotency-Key': key } });
      expect(conflict.body).toEqual({
        code: codes.IDEMPOTENCY_CONFLICT,
        data: `Idempotency key "${key}" was already used with a different payload`,
      });
      // The idempotencyKey parameter works the same way.
      const viaParameter = await send(`${route('once')}&idempotencyKey=${key}`);
      expect(viaParameter.body).toEqual(first.body);
      expect(await deliveriesWithKey(gateway, key)).toHaveLength(1);
    });

    it('1001 naming the Idempotency-Key header when it is invalid', async () => {
      const { body } = await send(`/api/third/email/sendMsg?${query({ email: 'a@example.com', content: 'x' })}`, {
        headers: { 'Idempotency-Key': 'k'.repeat(300) },
      });
      expect(body).toEqual({ code: codes.INVALID_ARGUMENT, data: 'Idempotency-Key: must be at most 255 characters' });
    });

    it('1007 for an unknown route under /api/third/ and for a method other than GET or POST, as JSON', async () => {
      for (const rawPath of ['/api/third/ding/send', '/api/third/', '/api/third', '/api/third/email/sendmsg']) {
        const { status, headers, body } = await send(rawPath, { method: 'GET', token: null });
        expect(status).toBe(200);
        expect(headers['content-type']).toMatch(/^application\/json/);
        expect(body.code).toBe(codes.NOT_FOUND);
        expect(body.data).toMatch(/^no such route: /);
      }
      const put = await send('/api/third/ding/sendMsg', { method: 'PUT' });
      expect(put.body).toEqual({ code: codes.NOT_FOUND, data: 'no route for PUT /api/third/ding/sendMsg: use GET or POST' });
      const trailingSlash = await send(`/api/third/email/sendMsg/?${query({ email: 'slash@example.com', content: 'x' })}`);
      expect(trailingSlash.body.code).toBe(1000);
    });

    it('1008 for a body over 1 MiB, with and without Content-Length', async () => {
      const big = JSON.stringify({ email: 'big@example.com', content: 'x'.repeat(1024 * 1024) });
      const before = await deliveryCount();
      const declared = await send('/api/third/email/sendMsg', { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
      expect(declared.status).toBe(200);
      expect(declared.body).toEqual({ code: codes.PAYLOAD_TOO_LARGE, data: 'body: larger than 1048576 bytes' });
      const chunked = await send('/api/third/email/sendMsg', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: big,
        chunked: true,
      });
      expect(chunked.body).toEqual({ code: codes.PAYLOAD_TOO_LARGE, data: 'body: larger than 1048576 bytes' });
      expect(await deliveryCount()).toBe(before);
      // Just under the limit is read.
      const shell = JSON.stringify({ email: 'fits@example.com', content: 'fits', padding: '' });
      const fits = JSON.stringify({ email: 'fits@example.com', content: 'fits', padding: 'z'.repeat(1024 * 1024 - shell.length) });
      expect(Buffer.byteLength(fits)).toBe(1024 * 1024);
      const ok = await send('/api/third/email/sendMsg', { method: 'POST', headers: { 'content-type': 'application/json' }, body: fits, chunked: true });
      expect(ok.body.code).toBe(1000);
    });

    it('1099 for an unexpected error: masked, no stack, a reference that is in the log', async () => {
      const service = gateway.app.service;
      const original = service.send;
      service.send = async () => {
        throw new Error('database exploded at /srv/secret/path.ts:42');
      };
      try {
        const { status, body, text } = await send(`/api/third/sms/sendMsg?${query({ mobile: mobile(), content: '1' })}`);
        expect(status).toBe(200);
        expect(body.code).toBe(codes.INTERNAL_ERROR);
        expect(body.data).toMatch(/^internal error \(reference err_[0-9a-f]{12}\)$/);
        expect(text).not.toMatch(/exploded|secret|\.ts:|at /);
        const reference = /err_[0-9a-f]{12}/.exec(body.data)![0];
        expect(gateway.logs.some((line) => line.reference === reference && line.level === 50)).toBe(true);
      } finally {
        service.send = original;
      }
    });
  });

  it('never writes robot credentials to the logs or the answers', async () => {
    const accessToken = robot('reject');
    const secret = `SEC${crypto.randomBytes(16).toString('hex')}`;
    const answers = [
      await send(`/api/third/ding/sendMsg?${query({ accessToken, secret, content: 'x' })}`),
      await send(`/api/third/ding/sendMsg?${query({ accessToken, secret, content: '' })}`),
      await send(`/api/third/ding/sendMsg?accessToken=${accessToken}&secret=${secret}&content=%ZZ`),
    ];
    const everything = JSON.stringify(gateway.logs) + answers.map((answer) => answer.text).join('');
    expect(everything).not.toContain(accessToken);
    expect(everything).not.toContain(secret);
  });
});

/** An email channel the test steers: `hang` holds attempts until released, otherwise each attempt fails and is retried. */
class SteeredEmail implements Channel<'EMAIL'> {
  readonly channel = 'EMAIL';
  readonly provider = 'steered';
  readonly development = true;
  hang = true;
  private releases: (() => void)[] = [];

  async send(_message: unknown, context: SendContext) {
    if (this.hang) {
      await new Promise<void>((resolve) => {
        this.releases.push(resolve);
        context.signal.addEventListener('abort', () => resolve());
      });
      return {};
    }
    throw new ChannelError('retryable', '451', 'try later, says the server');
  }

  release() {
    for (const release of this.releases.splice(0)) release();
  }
}

describeOnStores('legacy REST when the first attempt is not over or failed for now', (kind) => {
  let gateway: AnyGateway;
  let base: string;
  const email = new SteeredEmail();
  beforeAll(async () => {
    gateway = await startGatewayOn(kind, {
      channels: { EMAIL: email },
      env: { SEND_WAIT_MS: '100', RETRY_BASE_DELAY_MS: '60000', RETRY_MAX_DELAY_MS: '60000', BODY_LIMIT_BYTES: '2048' },
    });
    base = await gateway.listen();
  });
  afterAll(async () => {
    email.release();
    await gateway.close();
  });

  it('answers 1000 "queued" when the wait for the first attempt ends before the attempt', async () => {
    email.hang = true;
    const { body } = await legacyRequest(base, `/api/third/email/sendMsg?${query({ email: 'slow@example.com', content: 'slow' })}`);
    expect(body).toEqual({ code: 1000, data: 'queued: the first attempt is still under way', deliveryId: expect.any(String) });
    expect((await gateway.store.getDelivery(body.deliveryId!))?.status).toBe('SENDING');
    email.release();
    await expect.poll(async () => (await gateway.store.getDelivery(body.deliveryId!))?.status).toBe('SENT');
  });

  it('reads bodies up to BODY_LIMIT_BYTES only', async () => {
    const body = (size: number) => `email=limit%40example.com&content=${'z'.repeat(size - 'email=limit%40example.com&content='.length)}`;
    const over = await legacyRequest(base, '/api/third/email/sendMsg', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: body(2049),
    });
    expect(over.body).toEqual({ code: errorCatalog.PAYLOAD_TOO_LARGE.restCode, data: 'body: larger than 2048 bytes' });
    email.hang = false;
    const fits = await legacyRequest(base, '/api/third/email/sendMsg', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: body(2048),
    });
    expect(fits.body.code).toBe(1000);
  });

  it('answers 1009 when an idempotent repeat finds its delivery cancelled', async () => {
    email.hang = false;
    const rawPath = `/api/third/email/sendMsg?${query({ email: 'later@example.com', content: 'later' })}`;
    const headers = { 'Idempotency-Key': 'cancel-me' };
    const first = await legacyRequest(base, rawPath, { headers });
    expect(first.body).toEqual({ code: 1000, data: 'queued for retry: try later, says the server (451)', deliveryId: expect.any(String) });

    const { body: graph } = await gateway.graphql(
      'mutation($id: ID!) { cancelDelivery(id: $id) { __typename ... on Delivery { status } } }',
      { id: first.body.deliveryId },
    );
    expect(graph.data.cancelDelivery).toEqual({ __typename: 'Delivery', status: 'CANCELLED' });

    const again = await legacyRequest(base, rawPath, { headers });
    expect(again.body).toEqual({
      code: errorCatalog.INVALID_STATE.restCode,
      data: 'cancelled: it will not be sent',
      deliveryId: first.body.deliveryId,
    });
  });
});
