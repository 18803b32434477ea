import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { SignedWebhookChannel } from '../../src/channels/signed-webhook';
import { startWebhookReceiver, type WebhookReceiver } from '../peers/webhook-receiver';
import { countDeliveries, describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryFields, eventually, testToken } from '../support/gateway';

const sendWebhook = `mutation($input: SendWebhookInput!) {
  sendWebhook(input: $input) {
    __typename
    ... on Delivery { ${deliveryFields} }
    ... on Error { message }
    ... on ValidationError { fieldErrors { path message } }
  }
}`;

const deliveryQuery = `query($id: ID!) { node(id: $id) { ... on Delivery { ${deliveryFields} } } }`;

const secret = `whsec_${crypto.randomBytes(32).toString('base64')}`;
const urlToken = crypto.randomBytes(16).toString('hex');

describeOnStores('sendWebhook', (kind) => {
  let receiver: WebhookReceiver;
  /** Allows the receiver's 127.0.0.1, as an operator would list an internal host. */
  let gateway: AnyGateway;
  /** The default policy: nothing allowed. */
  let strict: AnyGateway;
  const answers: unknown[] = [];

  const call = async (on: AnyGateway, input: Record<string, unknown>) => {
    const result = await on.graphql(sendWebhook, { input });
    answers.push(result.body);
    expect(result.status).toBe(200);
    expect(result.body.errors).toBeUndefined();
    return result.body.data.sendWebhook;
  };
  const read = async (on: AnyGateway, id: string) => {
    const { body } = await on.graphql(deliveryQuery, { id });
    answers.push(body);
    return body.data.node;
  };
  const hook = (path = '/hooks/alerts') => `${receiver.url}${path}`;

  beforeAll(async () => {
    receiver = await startWebhookReceiver({ secret });
    gateway = await startGatewayOn(kind, { env: { WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' } });
    strict = await startGatewayOn(kind, {
      channels: {
        // The system resolver, except for names a test gives an address (no DNS needed, and a rebinding name).
        WEBHOOK: new SignedWebhookChannel({
          allowedHosts: [],
          timeoutMs: 2000,
          resolve: (() => {
            let rebindCalls = 0;
            return async (hostname: string) => {
              if (hostname === 'internal.example') return [{ address: '10.20.30.40', family: 4 }];
              if (hostname === 'rebind.example') {
                return [{ address: rebindCalls++ === 0 ? '93.184.216.34' : '127.0.0.1', family: 4 }];
              }
              const dns = await import('node:dns');
              return dns.promises.lookup(hostname, { all: true, verbatim: true });
            };
          })(),
        }),
      },
    });
  });
  afterAll(async () => {
    await gateway.close();
    await strict.close();
    await receiver.close();
    // The secret and the URL's token never reach an answer or a log line.
    const seen = JSON.stringify([answers, gateway.logs, strict.logs]);
    expect(seen).not.toContain(secret);
    expect(seen).not.toContain(secret.slice('whsec_'.length));
    expect(seen).not.toContain(urlToken);
  });
  beforeEach(() => receiver.reset());

  it('POSTs the body signed, the receiver verifies it with standardwebhooks, and the delivery is SENT', async () => {
    const body = { event: 'disk.full', host: 'db-1', value: 95.5, tags: ['prod', '告警'], resolved: false, note: null };
    const delivery = await call(gateway, { url: `${hook()}?token=${urlToken}`, body, secret });
    expect(delivery).toMatchObject({ __typename: 'Delivery', channel: 'WEBHOOK', status: 'SENT', attempts: 1, provider: 'webhook' });
    expect(delivery.lastError).toBeNull();
    // Shown without the query, which may carry the receiver's token.
    expect(delivery.recipient).toBe(hook());

    expect(receiver.requests).toHaveLength(1);
    const [request] = receiver.requests;
    expect(request).toMatchObject({ verified: true, id: delivery.id, contentType: 'application/json', path: '/hooks/alerts' });
    expect(request!.query).toBe(`token=${urlToken}`);
    expect(request!.payload).toEqual(body);
    expect(Math.abs(Number(request!.timestamp) - Date.now() / 1000)).toBeLessThan(60);

    const row = await gateway.store.getDelivery(delivery.id);
    expect(JSON.parse(row!.payload)).toEqual({ url: hook(), body });
    // Final: the secret and the full URL are erased.
    expect(row!.sealedSecrets).toBeNull();
  });

  it('keeps the secret and the full URL sealed while the delivery waits', async () => {
    // Retry-After parks it for an hour: no other attempt while the test looks.
    receiver.script({ status: 503, headers: { 'retry-after': '3600' } });
    const delivery = await call(gateway, { url: `${hook()}?token=${urlToken}`, body: { n: 1 }, secret, wait: true });
    expect(delivery.status).toBe('RETRYING');
    expect(Date.parse(delivery.nextAttemptAt) - Date.now()).toBeGreaterThan(3_500_000);
    const row = await gateway.store.getDelivery(delivery.id);
    expect(row!.sealedSecrets).toMatch(/^v1\./);
    expect(row!.payload).not.toContain(urlToken);
    const { body } = await gateway.graphql('mutation($id: ID!) { cancelDelivery(id: $id) { __typename ... on Delivery { status } } }', {
      id: delivery.id,
    });
    answers.push(body);
    expect(body.data.cancelDelivery).toEqual({ __typename: 'Delivery', status: 'CANCELLED' });
  });

  it('a 500 then a 200: SENT after two attempts with the same webhook-id, each verified', async () => {
    receiver.script({ status: 500, body: 'Internal Server Error' });
    const first = await call(gateway, { url: hook(), body: { attempt: 'twice' }, secret });
    expect(first).toMatchObject({ status: 'RETRYING', attempts: 1, lastError: { code: 'HTTP_500' } });
    const delivery = await eventually(async () => {
      const current = await read(gateway, first.id);
      return current.status === 'SENT' && current;
    });
    expect(delivery.attempts).toBe(2);
    expect(delivery.attemptLog).toMatchObject([
      { number: 1, outcome: 'RETRYABLE', providerCode: 'HTTP_500', providerMessage: 'The webhook receiver answered HTTP 500 (server error): Internal Server Error' },
      { number: 2, outcome: 'SENT', providerCode: null },
    ]);
    const attempts = receiver.attemptsOf(first.id);
    expect(attempts.map((attempt) => [attempt.status, attempt.verified])).toEqual([
      [500, true],
      [200, true],
    ]);
    expect(receiver.requests).toHaveLength(2);
  });

  it('a 410 Gone ends FAILED after one attempt, with the status as provider code', async () => {
    receiver.script({ status: 410, body: 'subscription removed' });
    const delivery = await call(gateway, { url: hook(), body: { x: 1 }, secret });
    expect(delivery).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      lastError: { code: 'HTTP_410' },
      attemptLog: [{ number: 1, outcome: 'PERMANENT', providerCode: 'HTTP_410' }],
    });
    expect(delivery.lastError.message).toMatch(/answered HTTP 410 \(gone/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiver.requests).toHaveLength(1);
  });

  it('a 429 with Retry-After waits as long as it says, then sends', async () => {
    receiver.script({ status: 429, headers: { 'retry-after': '1' } });
    const before = Date.now();
    const first = await call(gateway, { url: hook(), body: { x: 2 }, secret });
    expect(first).toMatchObject({ status: 'RETRYING', attemptLog: [{ outcome: 'RATE_LIMITED', providerCode: 'HTTP_429' }] });
    expect(Date.parse(first.nextAttemptAt) - before).toBeGreaterThanOrEqual(1000);
    const delivery = await eventually(async () => {
      const current = await read(gateway, first.id);
      return current.status === 'SENT' && current;
    });
    const [one, two] = receiver.attemptsOf(first.id);
    expect(two!.receivedAt - one!.receivedAt).toBeGreaterThanOrEqual(950);
    expect(delivery.attempts).toBe(2);
  });

  it('a redirect is not followed: FAILED, and only the first URL is called', async () => {
    receiver.script({ status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } });
    const delivery = await call(gateway, { url: hook(), body: {}, secret });
    expect(delivery).toMatchObject({ status: 'FAILED', lastError: { code: 'HTTP_302' } });
    expect(delivery.lastError.message).toMatch(/redirect, which is not followed/);
    expect(receiver.requests).toHaveLength(1);
  });

  it.each([
    ['the receiver on 127.0.0.1', () => hook(), '127.0.0.1 is a loopback address'],
    ['localhost (resolves to loopback)', () => `http://localhost:${receiver.port}/hooks`, 'localhost resolves to'],
    ['a name that resolves to a private address', () => 'https://internal.example/hooks', 'internal.example resolves to 10.20.30.40'],
    ['the metadata address', () => 'http://169.254.169.254/latest/meta-data/', 'link-local (cloud metadata)'],
    ['an IPv4-mapped IPv6 loopback', () => `http://[::ffff:127.0.0.1]:${receiver.port}/`, 'loopback (IPv4 inside IPv6)'],
  ])('refuses %s unless WEBHOOK_ALLOWED_HOSTS lists it: a ValidationError on url, nothing recorded or sent', async (_label, url, message) => {
    const before = await countDeliveries(strict);
    const result = await call(strict, { url: url(), body: { x: 1 }, secret });
    expect(result.__typename).toBe('ValidationError');
    expect(result.fieldErrors).toEqual([{ path: 'url', message: expect.stringContaining(message) }]);
    expect(result.fieldErrors[0].message).toContain('WEBHOOK_ALLOWED_HOSTS');
    expect(await countDeliveries(strict)).toBe(before);
    expect(receiver.requests).toHaveLength(0);
  });

  it('checks again at the attempt: a name that rebinds to loopback after validation ends FAILED, never reaching it', async () => {
    const delivery = await call(strict, { url: `http://rebind.example:${receiver.port}/hooks`, body: { x: 1 }, secret });
    expect(delivery).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      lastError: { code: 'WEBHOOK_DESTINATION_REFUSED', message: expect.stringContaining('rebind.example resolves to 127.0.0.1') },
      attemptLog: [{ outcome: 'PERMANENT', providerCode: 'WEBHOOK_DESTINATION_REFUSED' }],
    });
    expect(receiver.requests).toHaveLength(0);
  });

  it.each([
    ['a URL that is not http(s)', { url: 'ftp://example.com/x' }, [{ path: 'url', message: 'must be an http(s) URL' }]],
    ['a URL with credentials', { url: 'https://user:pass@example.com/x' }, [{ path: 'url', message: expect.stringMatching(/must not carry credentials/) }]],
    ['a secret without whsec_', { secret: secret.slice('whsec_'.length) }, [{ path: 'secret', message: expect.stringMatching(/^must be whsec_/) }]],
    ['a secret of 16 bytes', { secret: `whsec_${crypto.randomBytes(16).toString('base64')}` }, [{ path: 'secret', message: expect.stringMatching(/24- to 64-byte/) }]],
    ['a secret of 65 bytes', { secret: `whsec_${crypto.randomBytes(65).toString('base64')}` }, [{ path: 'secret', message: expect.stringMatching(/24- to 64-byte/) }]],
    ['a secret that is not Base64', { secret: 'whsec_not*base64*at*all*0123456789abcdef' }, [{ path: 'secret', message: expect.stringMatching(/Base64/) }]],
    ['a body over 256 KiB', { body: { blob: 'x'.repeat(300_000) } }, [{ path: 'body', message: expect.stringMatching(/at most 262144/) }]],
  ])('refuses %s with a ValidationError and records nothing', async (_label, fields, fieldErrors) => {
    const before = await countDeliveries(gateway);
    const result = await call(gateway, { url: hook(), body: { x: 1 }, secret, ...fields });
    expect(result.__typename).toBe('ValidationError');
    expect(result.fieldErrors).toEqual(fieldErrors);
    expect(await countDeliveries(gateway)).toBe(before);
    expect(receiver.requests).toHaveLength(0);
  });

  it('the same idempotency key and payload return the original delivery; the receiver is called once', async () => {
    const input = { url: hook(), body: { k: 'once' }, secret, idempotencyKey: `wh-${crypto.randomUUID()}` };
    const first = await call(gateway, input);
    const second = await call(gateway, input);
    expect(second.id).toBe(first.id);
    expect(receiver.requests).toHaveLength(1);
  });

  it('REST: /api/third/webhook/sendMsg?url&secret&content POSTs {"content": …}, signed', async () => {
    const query = new URLSearchParams({ url: hook('/rest'), secret, content: '磁盘告警 /var 95%' });
    const response = await gateway.fetch(`/api/third/webhook/sendMsg?${query}`, { headers: { 'OPS-Token': testToken } });
    const answer = await response.json();
    answers.push(answer);
    expect(answer).toMatchObject({ code: 1000, data: 'sent' });
    expect(receiver.requests).toHaveLength(1);
    expect(receiver.requests[0]).toMatchObject({ verified: true, id: answer.deliveryId, path: '/rest', payload: { content: '磁盘告警 /var 95%' } });

    const refused = await strict.fetch(`/api/third/webhook/sendMsg?${new URLSearchParams({ url: 'http://127.0.0.1/x', secret, content: 'x' })}`, {
      headers: { 'OPS-Token': testToken },
    });
    const refusal = await refused.json();
    answers.push(refusal);
    expect(refusal.data).toMatch(/^url: 127\.0\.0\.1 is a loopback address/);
    const missing = await (await gateway.fetch('/api/third/webhook/sendMsg?content=x', { headers: { 'OPS-Token': testToken } })).json();
    expect(missing.data).toBe('url: is required; secret: is required');
  });
});
