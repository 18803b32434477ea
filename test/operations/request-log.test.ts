import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startGateway, testToken, type TestGateway } from '../support/gateway';

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const sendEmail = `mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { id status } } }`;

describe('one JSON log line per request', () => {
  let gateway: TestGateway;
  let base: string;
  const requestLines = () => gateway.logs.filter((line) => line.msg === 'request');
  const lineFor = (requestId: string) => requestLines().find((line) => line.requestId === requestId);

  beforeAll(async () => {
    gateway = await startGateway({ env: { DINGTALK_BASE_URL: 'http://127.0.0.1:9' } });
    base = await gateway.listen();
  });
  afterAll(() => gateway.close());

  it('honours an incoming X-Request-Id, echoes it, and logs method, route, status, duration and operation, never the token', async () => {
    const response = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'OPS-Token': testToken, 'X-Request-Id': 'trace-42.abc' },
      body: JSON.stringify({ query: sendEmail, variables: { input: { to: ['ops@example.com'], subject: 's', content: 'x' } } }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe('trace-42.abc');
    const { data } = await response.json();

    const line = lineFor('trace-42.abc')!;
    expect(line).toMatchObject({
      level: 30,
      component: 'http',
      method: 'POST',
      route: '/graphql',
      status: 200,
      operation: 'mutation sendEmail',
    });
    expect(line.durationMs).toEqual(expect.any(Number));
    expect(Object.keys(line).sort()).toEqual(
      ['component', 'durationMs', 'level', 'method', 'msg', 'operation', 'requestId', 'route', 'service', 'status', 'time'].sort(),
    );
    expect(JSON.stringify(gateway.logs)).not.toContain(testToken);

    // The delivery's own lines carry its id.
    const id = data.sendEmail.id;
    expect(gateway.logs.some((entry) => entry.deliveryId === id && entry.msg === 'delivery sent')).toBe(true);
  });

  it('generates a request id when there is none, or when the incoming one is not an id', async () => {
    const plain = await gateway.fetch('/healthz');
    const generated = plain.headers.get('x-request-id')!;
    expect(generated).toMatch(uuid);
    // Probes are logged at debug level, so that they do not drown the traffic.
    expect(lineFor(generated)).toMatchObject({ level: 20, route: '/healthz', status: 200 });

    for (const hostile of ['has spaces "and quotes"', 'x'.repeat(129), '{"level":60}']) {
      const response = await gateway.fetch('/healthz', { headers: { 'X-Request-Id': hostile } });
      const replaced = response.headers.get('x-request-id')!;
      expect(replaced).toMatch(uuid);
      expect(lineFor(replaced)).toBeDefined();
      expect(requestLines().some((line) => line.requestId === hostile)).toBe(false);
    }
  });

  it('logs the route template, not the URL: no robot credentials from a legacy query string, no token on a 401', async () => {
    const query = new URLSearchParams({ accessToken: 'AT-SECRET-0001', secret: 'SEC-SECRET-0002', content: 'disk full' });
    const legacy = await fetch(`${base}/api/third/ding/sendMsg?${query}`, {
      headers: { 'OPS-Token': testToken, 'X-Request-Id': 'legacy-1' },
    });
    expect(legacy.headers.get('x-request-id')).toBe('legacy-1');
    const line = lineFor('legacy-1')!;
    expect(line).toMatchObject({ method: 'GET', route: '/api/third/ding/sendMsg', status: legacy.status });
    const text = JSON.stringify(line);
    for (const secret of ['AT-SECRET-0001', 'SEC-SECRET-0002', 'accessToken', testToken]) expect(text).not.toContain(secret);

    const refused = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'OPS-Token': 'wrong-token-secret-value', 'X-Request-Id': 'refused-1' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(refused.status).toBe(401);
    expect(lineFor('refused-1')).toMatchObject({ route: '/graphql', status: 401, level: 30 });
    expect(JSON.stringify(gateway.logs)).not.toContain('wrong-token-secret-value');

    const unknown = await fetch(`${base}/wp-admin/setup.php?password=hunter2`, { headers: { 'X-Request-Id': 'scan-1' } });
    expect(unknown.status).toBe(404);
    expect(lineFor('scan-1')).toMatchObject({ route: '*', status: 404 });
    expect(JSON.stringify(lineFor('scan-1'))).not.toContain('hunter2');
  });

  it('exactly one line per request', async () => {
    const before = requestLines().length;
    await Promise.all([gateway.fetch('/readyz'), gateway.fetch('/metrics'), gateway.fetch('/nope')]);
    await eventually(() => requestLines().length === before + 3);
    expect(requestLines().slice(before).map((line) => line.route).sort()).toEqual(['*', '/metrics', '/readyz']);
  });
});
