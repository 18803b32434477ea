import crypto from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ChannelError } from '../../src/channels/channel';
import { retryAfterMs, SignedWebhookChannel, signWebhook, webhookHeaders } from '../../src/channels/signed-webhook';
import { refusedAddressReason, type Resolver } from '../../src/channels/webhook-destination';
import { ValidationError } from '../../src/errors';
import { startWebhookReceiver, type WebhookReceiver } from '../peers/webhook-receiver';

// The published example of the Standard Webhooks / Svix documentation.
const vector = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

const newSecret = () => `whsec_${crypto.randomBytes(32).toString('base64')}`;
const context = (deliveryId = 'dlv_test', attempt = 1) => ({ deliveryId, attempt, signal: new AbortController().signal });

async function failure(promise: Promise<unknown>) {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(ChannelError);
  const { kind, code, message, retryAfterMs } = error as ChannelError;
  return { kind, code, message, retryAfterMs };
}

describe('Standard Webhooks signature', () => {
  it('matches the published vector', () => {
    expect(signWebhook(vector.secret, vector.id, vector.timestamp, vector.body)).toBe(vector.signature);
  });

  it('matches the standardwebhooks package for any secret, id and body', () => {
    for (let i = 0; i < 50; i++) {
      const secret = `whsec_${crypto.randomBytes(24 + (i % 41)).toString('base64')}`;
      const id = `dlv_${crypto.randomBytes(10).toString('hex')}`;
      const timestamp = 1_700_000_000 + i * 7919;
      const body = JSON.stringify({ i, text: '磁盘告警 ✓ "quoted" \\ \n', nested: [null, true, 1.5] });
      expect(signWebhook(secret, id, timestamp, body)).toBe(new Webhook(secret).sign(id, new Date(timestamp * 1000), body));
    }
  });

  it('the package verifies the headers the gateway writes', () => {
    const secret = newSecret();
    const body = JSON.stringify({ hello: 'world' });
    const headers = webhookHeaders(secret, 'dlv_abc', Math.floor(Date.now() / 1000), body);
    expect(new Webhook(secret).verify(body, headers)).toEqual({ hello: 'world' });
    expect(() => new Webhook(newSecret()).verify(body, headers)).toThrow(/No matching signature/);
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  it.each([
    ['120', 120_000],
    [' 0 ', 0],
    ['Tue, 01 Dec 2026 12:00:30 GMT', 30_000],
    ['Tue, 01 Dec 2026 11:00:00 GMT', 0],
    ['soon', undefined],
    ['-5', undefined],
    [undefined, undefined],
  ])('%s → %s ms', (value, expected) => {
    expect(retryAfterMs(value, now)).toBe(expected);
  });
});

describe('the signed webhook channel against a receiver that verifies with standardwebhooks', () => {
  const secret = newSecret();
  let receiver: WebhookReceiver;
  let channel: SignedWebhookChannel;
  let clock = Date.now();

  beforeAll(async () => {
    receiver = await startWebhookReceiver({ secret });
    channel = new SignedWebhookChannel({ allowedHosts: ['127.0.0.1'], timeoutMs: 500, now: () => clock });
  });
  afterAll(async () => {
    await channel.close();
    await receiver.close();
  });
  beforeEach(() => {
    receiver.reset();
    clock = Date.now();
  });

  const send = (body: unknown = { event: 'disk.full' }, deliveryId = 'dlv_test', path = '/hook') =>
    channel.send({ url: `${receiver.url}${path}`, body: body as never, secret }, context(deliveryId));

  it('POSTs the JSON body with content-type, webhook-id, webhook-timestamp and a signature the package accepts', async () => {
    await expect(send({ event: 'disk.full', value: 95, tags: ['a', '告警'] }, 'dlv_0001')).resolves.toEqual({});
    const [request] = receiver.requests;
    expect(request).toMatchObject({ verified: true, id: 'dlv_0001', contentType: 'application/json', path: '/hook' });
    expect(request!.payload).toEqual({ event: 'disk.full', value: 95, tags: ['a', '告警'] });
    expect(Math.abs(Number(request!.timestamp) - clock / 1000)).toBeLessThan(1);
    expect(request!.signature).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
  });

  it('sends any JSON value: a string, a number, null, an array', async () => {
    for (const body of ['plain', 42, null, [1, { a: 2 }]]) await send(body);
    expect(receiver.requests.map((request) => request.payload)).toEqual(['plain', 42, null, [1, { a: 2 }]]);
    expect(receiver.requests.every((request) => request.verified)).toBe(true);
  });

  it('keeps webhook-id across attempts and signs each with its own timestamp', async () => {
    receiver.script(503);
    await failure(send({ n: 1 }, 'dlv_retry'));
    clock += 61_000;
    await send({ n: 1 }, 'dlv_retry');
    const attempts = receiver.attemptsOf('dlv_retry');
    expect(attempts.map((attempt) => [attempt.status, attempt.verified])).toEqual([
      [503, true],
      [200, true],
    ]);
    expect(Number(attempts[1]!.timestamp) - Number(attempts[0]!.timestamp)).toBe(61);
    expect(attempts[1]!.signature).not.toBe(attempts[0]!.signature);
  });

  it('a wrong secret is refused by the receiver (401): permanent', async () => {
    const error = await failure(channel.send({ url: receiver.url, body: {}, secret: newSecret() }, context()));
    expect(error).toMatchObject({ kind: 'permanent', code: 'HTTP_401' });
    expect(receiver.requests[0]!.verifyError).toMatch(/No matching signature/);
  });

  // Every class of answer, written out here (not imported): Standard Webhooks' retry convention.
  const table: [number, 'sent' | 'retryable' | 'rate_limited' | 'permanent'][] = [
    [200, 'sent'],
    [201, 'sent'],
    [202, 'sent'],
    [204, 'sent'],
    [408, 'retryable'],
    [429, 'rate_limited'],
    [500, 'retryable'],
    [502, 'retryable'],
    [503, 'retryable'],
    [504, 'retryable'],
    [301, 'permanent'],
    [302, 'permanent'],
    [307, 'permanent'],
    [308, 'permanent'],
    [400, 'permanent'],
    [401, 'permanent'],
    [403, 'permanent'],
    [404, 'permanent'],
    [405, 'permanent'],
    [410, 'permanent'],
    [413, 'permanent'],
    [422, 'permanent'],
  ];
  it.each(table)('HTTP %i is %s', async (status, kind) => {
    receiver.script({ status, headers: status >= 300 && status < 400 ? { location: 'http://169.254.169.254/latest' } : {} });
    if (kind === 'sent') {
      await expect(send()).resolves.toEqual({});
      return;
    }
    const error = await failure(send());
    expect(error).toMatchObject({ kind, code: `HTTP_${status}`, retryAfterMs: undefined });
    expect(error.message).toMatch(new RegExp(`^The webhook receiver answered HTTP ${status} \\(`));
    if (status >= 300 && status < 400) expect(error.message).toMatch(/redirect, which is not followed/);
    // Redirects are not followed: one request only.
    expect(receiver.requests).toHaveLength(1);
  });

  it.each([
    [429, 'rate_limited', '7', 7000],
    [503, 'retryable', '120', 120_000],
    [500, 'retryable', null, 30_000],
    [408, 'retryable', '2', 2000],
    [503, 'retryable', '86400', 3_600_000],
  ] as const)('HTTP %i with Retry-After is %s, not sooner than it says (capped at an hour)', async (status, kind, value, expected) => {
    const header = value ?? new Date(Date.now() + 30_000).toUTCString();
    receiver.script({ status, headers: { 'retry-after': header } });
    const error = await failure(send());
    expect(error.kind).toBe(kind);
    // An HTTP date has a one-second resolution.
    expect(error.retryAfterMs).toBeGreaterThanOrEqual(expected - 1000);
    expect(error.retryAfterMs).toBeLessThanOrEqual(expected);
  });

  it('keeps a short part of the receiver answer, without the token of the URL or the secret', async () => {
    const token = crypto.randomBytes(12).toString('hex');
    receiver.script({ status: 400, body: `bad request for token=${token} with ${secret} ${'x'.repeat(500)}` });
    const error = await failure(channel.send({ url: `${receiver.url}/hook?token=${token}`, body: {}, secret }, context()));
    expect(error.message).toContain('bad request for [redacted] with [redacted]');
    expect(error.message).not.toContain(token);
    expect(error.message).not.toContain(secret);
    expect(error.message.length).toBeLessThan(320);
    expect(receiver.requests[0]!.query).toBe(`token=${token}`);

    // The value alone, as a receiver might echo it.
    receiver.script({ status: 403, body: `unknown key ${token}` });
    const again = await failure(channel.send({ url: `${receiver.url}/hook?token=${token}&v=1`, body: {}, secret }, context()));
    expect(again.message).toBe('The webhook receiver answered HTTP 403 (refused): unknown key [redacted]');
  });

  it('reads no more than 64 KiB of an answer: a huge body still counts by its status', async () => {
    receiver.script({ status: 200, body: 'x'.repeat(5_000_000) });
    await expect(send()).resolves.toEqual({});
    receiver.script({ status: 400, body: 'y'.repeat(5_000_000) });
    expect(await failure(send())).toMatchObject({ kind: 'permanent', code: 'HTTP_400', message: 'The webhook receiver answered HTTP 400 (refused)' });
    // The connection was dropped, not poisoned: the next send goes through.
    await expect(send()).resolves.toEqual({});
  });

  it('a slow receiver is a retryable timeout that names no URL', async () => {
    receiver.script({ status: 200, delayMs: 1500 });
    expect(await failure(send())).toEqual({
      kind: 'retryable',
      code: 'ETIMEDOUT',
      message: 'The webhook receiver did not answer within 500 ms',
      retryAfterMs: undefined,
    });
  });

  it('a receiver that is not listening is retryable', async () => {
    const error = await failure(channel.send({ url: 'http://127.0.0.1:9/hook', body: {}, secret }, context()));
    expect(error).toMatchObject({ kind: 'retryable', code: 'ECONNREFUSED' });
  });
});

describe('SSRF: which addresses a webhook may reach', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.1.2', 'loopback'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private (carrier-grade NAT)'],
    ['fc00::1', 'private (unique local)'],
    ['fd12:3456::1', 'private (unique local)'],
    ['169.254.169.254', 'link-local (cloud metadata)'],
    ['169.254.0.1', 'link-local (cloud metadata)'],
    ['fe80::1', 'link-local'],
    ['febf::1', 'link-local'],
    ['0.0.0.0', 'unspecified ("this network")'],
    ['0.1.2.3', 'unspecified ("this network")'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'reserved or broadcast'],
    ['::ffff:127.0.0.1', 'loopback (IPv4 inside IPv6)'],
    ['::ffff:7f00:1', 'loopback (IPv4 inside IPv6)'],
    ['::ffff:a9fe:a9fe', 'link-local (cloud metadata) (IPv4 inside IPv6)'],
    ['::ffff:10.0.0.1', 'private (IPv4 inside IPv6)'],
    ['::127.0.0.1', 'loopback (IPv4 inside IPv6)'],
    ['64:ff9b::169.254.169.254', 'link-local (cloud metadata) (IPv4 inside IPv6)'],
    ['2002:7f00:1::', 'loopback (IPv4 inside a 6to4 address)'],
    ['fe80::1%eth0', 'link-local'],
  ])('%s is refused as %s', (address, reason) => {
    expect(refusedAddressReason(address)).toBe(reason);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.15.255.255', '172.32.0.1', '192.169.0.1', '100.128.0.1', '169.255.0.1', '223.255.255.255', '2606:4700:4700::1111', '2001:4860::8888', '::ffff:8.8.8.8', '2400:cb00::1'])(
    '%s may be reached',
    (address) => {
      expect(refusedAddressReason(address)).toBeUndefined();
    },
  );

  const secret = newSecret();
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await startWebhookReceiver({ secret });
  });
  afterAll(() => receiver.close());
  beforeEach(() => receiver.reset());

  /** A resolver that answers from a table (a name may answer differently the second time: DNS rebinding). */
  const resolverOf = (table: Record<string, string[][]>): Resolver => {
    const calls = new Map<string, number>();
    return async (hostname) => {
      const answers = table[hostname];
      if (!answers) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
      const call = calls.get(hostname) ?? 0;
      calls.set(hostname, call + 1);
      return answers[Math.min(call, answers.length - 1)]!.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    };
  };
  const channelWith = (allowedHosts: string[], table: Record<string, string[][]> = {}) =>
    new SignedWebhookChannel({ allowedHosts, timeoutMs: 1000, resolve: resolverOf(table) });

  it.each([
    ['http://127.0.0.1:PORT/hook', '127.0.0.1 is a loopback address'],
    ['http://[::1]:PORT/hook', '::1 is a loopback address'],
    ['http://[::ffff:127.0.0.1]:PORT/hook', '::ffff:7f00:1 is a loopback (IPv4 inside IPv6) address'],
    ['http://2130706433:PORT/hook', '127.0.0.1 is a loopback address'],
    ['http://0x7f.1:PORT/hook', '127.0.0.1 is a loopback address'],
    ['http://169.254.169.254/latest/meta-data', '169.254.169.254 is a link-local (cloud metadata) address'],
    ['http://0.0.0.0:PORT/', '0.0.0.0 is a unspecified ("this network") address'],
  ])('%s is refused before connecting, as a permanent WEBHOOK_DESTINATION_REFUSED', async (url, message) => {
    const channel = channelWith([]);
    try {
      const error = await failure(channel.send({ url: url.replace('PORT', String(receiver.port)), body: {}, secret }, context()));
      expect(error).toMatchObject({ kind: 'permanent', code: 'WEBHOOK_DESTINATION_REFUSED' });
      expect(error.message).toContain(message);
      expect(error.message).toContain('WEBHOOK_ALLOWED_HOSTS');
      expect(receiver.requests).toHaveLength(0);
    } finally {
      await channel.close();
    }
  });

  it('refuses a name that resolves to a private address, or to a public and a private one', async () => {
    const channel = channelWith([], {
      'hooks.example': [['10.0.0.7']],
      'mixed.example': [['93.184.216.34', '192.168.0.10']],
      'v6.example': [['fd00::5']],
    });
    try {
      for (const [host, address] of [['hooks.example', '10.0.0.7'], ['mixed.example', '192.168.0.10'], ['v6.example', 'fd00::5']]) {
        const error = await failure(channel.send({ url: `http://${host}:${receiver.port}/`, body: {}, secret }, context()));
        expect(error).toMatchObject({ kind: 'permanent', code: 'WEBHOOK_DESTINATION_REFUSED' });
        expect(error.message).toContain(`${host} resolves to ${address}`);
      }
      expect(receiver.requests).toHaveLength(0);
    } finally {
      await channel.close();
    }
  });

  it('refuses localhost through the system resolver', async () => {
    const channel = new SignedWebhookChannel({ allowedHosts: [], timeoutMs: 1000 });
    try {
      const error = await failure(channel.send({ url: `http://localhost:${receiver.port}/`, body: {}, secret }, context()));
      expect(error).toMatchObject({ kind: 'permanent', code: 'WEBHOOK_DESTINATION_REFUSED' });
      expect(error.message).toMatch(/^localhost resolves to (127\.0\.0\.1|::1), which is a loopback address/);
      await expect(channel.validate({ url: `http://localhost:${receiver.port}/`, body: {}, secret })).rejects.toBeInstanceOf(ValidationError);
    } finally {
      await channel.close();
    }
  });

  it('connects to the address it checked: a DNS answer that changes after the check cannot reach a refused address', async () => {
    // First answer public (the check at validation), then loopback (what a rebinding attacker serves next).
    const channel = channelWith([], { 'rebind.example': [['93.184.216.34'], ['127.0.0.1']] });
    try {
      await expect(channel.validate({ url: `http://rebind.example:${receiver.port}/`, body: {}, secret })).resolves.toBeUndefined();
      const error = await failure(channel.send({ url: `http://rebind.example:${receiver.port}/`, body: {}, secret }, context()));
      expect(error).toMatchObject({ kind: 'permanent', code: 'WEBHOOK_DESTINATION_REFUSED' });
      expect(receiver.requests).toHaveLength(0);
    } finally {
      await channel.close();
    }
  });

  it('the socket goes to the resolved address the check saw (a name only the injected resolver knows is reached)', async () => {
    const channel = channelWith(['hooks.internal'], { 'hooks.internal': [['127.0.0.1']] });
    try {
      await expect(channel.send({ url: `http://hooks.internal:${receiver.port}/x`, body: { ok: 1 }, secret }, context())).resolves.toEqual({});
      expect(receiver.verified).toHaveLength(1);
    } finally {
      await channel.close();
    }
  });

  it.each([
    [['127.0.0.1'], 'http://127.0.0.1:PORT/'],
    [['LOCALHOST'], 'http://localhost.:PORT/'],
    [['::1', '127.0.0.1'], 'http://127.0.0.1:PORT/'],
  ])('WEBHOOK_ALLOWED_HOSTS=%j lets %s through', async (allowed, url) => {
    const channel = new SignedWebhookChannel({ allowedHosts: allowed, timeoutMs: 1000 });
    try {
      const target = url.replace('PORT', String(receiver.port));
      await expect(channel.validate({ url: target, body: {}, secret })).resolves.toBeUndefined();
      await expect(channel.send({ url: target, body: {}, secret }, context())).resolves.toEqual({});
    } finally {
      await channel.close();
    }
  });

  it('validate refuses literal and resolved refused addresses with a field error on url, and accepts a name that does not resolve', async () => {
    const channel = channelWith([], { 'private.example': [['172.20.0.1']] });
    try {
      for (const url of ['http://10.0.0.1/', 'https://[fe80::1]/', 'http://private.example/']) {
        const error = await channel.validate({ url, body: {}, secret }).catch((thrown: unknown) => thrown);
        expect(error).toBeInstanceOf(ValidationError);
        expect((error as ValidationError).fieldErrors).toEqual([{ path: 'url', message: expect.stringContaining('refused') }]);
      }
      await expect(channel.validate({ url: 'https://not-yet.example/', body: {}, secret })).resolves.toBeUndefined();
      // At send time the same name is a transport failure (retryable), not a refusal.
      expect(await failure(channel.send({ url: 'https://not-yet.example/', body: {}, secret }, context()))).toMatchObject({
        kind: 'retryable',
        code: 'ENOTFOUND',
      });
    } finally {
      await channel.close();
    }
  });
});
