import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChannelError, type Channel, type DingMessage } from '../../src/channels/channel';
import { eventually, startGateway, testToken, type TestGateway } from '../support/gateway';

interface Scrape {
  text: string;
  types: Map<string, string>;
  /** Value of the sample with exactly these labels, or undefined. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

/** Parses the Prometheus text exposition format (what Prometheus itself reads). */
function parseScrape(text: string): Scrape {
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice('# TYPE '.length).split(' ');
      types.set(name, type);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unparseable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = raw.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return {
    text,
    types,
    value(name, labels = {}) {
      const wanted = Object.entries(labels).sort();
      const found = samples.find(
        (sample) => sample.name === name && JSON.stringify(Object.entries(sample.labels).sort()) === JSON.stringify(wanted),
      );
      return found?.value;
    },
  };
}

async function scrape(base: string): Promise<Scrape> {
  const response = await fetch(`${base}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseScrape(await response.text());
}

/** A DingTalk robot stand-in that answers by content: `flaky` fails once then works, `doomed` is refused for good. */
function scriptedRobot(): Channel<'DING'> {
  const seen = new Map<string, number>();
  return {
    channel: 'DING',
    provider: 'fake-robot',
    development: true,
    async send(message: DingMessage, { deliveryId }) {
      const attempt = (seen.get(deliveryId) ?? 0) + 1;
      seen.set(deliveryId, attempt);
      if (message.content === 'doomed') throw new ChannelError('permanent', '310000', 'keywords not in content');
      if (message.content === 'flaky' && attempt === 1) throw new ChannelError('retryable', 'HTTP_502', 'bad gateway');
      return { providerMessageId: `robot-${attempt}` };
    },
  };
}

const sendEmail = `mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { id status } } }`;
const sendDing = `mutation($input: SendDingInput!) { sendDing(input: $input) { __typename ... on Delivery { id status } } }`;

describe('/metrics scraped over HTTP after real sends', () => {
  let gateway: TestGateway;
  let base: string;
  let metrics: Scrape;

  beforeAll(async () => {
    gateway = await startGateway({ channels: { DING: scriptedRobot() } });
    base = await gateway.listen();
    for (const subject of ['one', 'two']) {
      const { body } = await gateway.graphql(sendEmail, { input: { to: ['ops@example.com'], subject, content: 'x' } });
      expect(body.data.sendEmail).toMatchObject({ __typename: 'Delivery', status: 'SENT' });
    }
    const robot = { accessToken: 'at-0123', secret: 'SEC0123' };
    const flaky = await gateway.graphql(sendDing, { input: { ...robot, content: 'flaky' } });
    expect(flaky.body.data.sendDing).toMatchObject({ status: 'RETRYING' });
    const doomed = await gateway.graphql(sendDing, { input: { ...robot, content: 'doomed' } });
    expect(doomed.body.data.sendDing).toMatchObject({ status: 'FAILED' });
    await eventually(async () => (await gateway.store.getDelivery(flaky.body.data.sendDing.id))?.status === 'SENT');
    // Metrics count an attempt once its record is on disk, a moment after other readers can see it.
    await eventually(() => gateway.app.dispatcher.inFlightCount === 0);
    expect((await gateway.fetch('/no/such/route/123')).status).toBe(404);
    metrics = await scrape(base);
  });
  afterAll(() => gateway.close());

  it('counts accepted, sent, failed and retried deliveries by channel and provider', () => {
    const email = { channel: 'EMAIL', provider: 'file-outbox' };
    const ding = { channel: 'DING', provider: 'fake-robot' };
    expect(metrics.value('notify_gateway_deliveries_accepted_total', email)).toBe(2);
    expect(metrics.value('notify_gateway_deliveries_accepted_total', ding)).toBe(2);
    expect(metrics.value('notify_gateway_deliveries_sent_total', email)).toBe(2);
    expect(metrics.value('notify_gateway_deliveries_sent_total', ding)).toBe(1);
    expect(metrics.value('notify_gateway_deliveries_failed_total', ding)).toBe(1);
    expect(metrics.value('notify_gateway_deliveries_failed_total', email)).toBeUndefined();
    expect(metrics.value('notify_gateway_deliveries_retried_total', ding)).toBe(1);
    for (const name of ['accepted', 'sent', 'failed', 'retried']) {
      expect(metrics.types.get(`notify_gateway_deliveries_${name}_total`)).toBe('counter');
    }
  });

  it('observes every attempt in a histogram by provider and outcome', () => {
    const count = (provider: string, outcome: string) =>
      metrics.value('notify_gateway_delivery_attempt_duration_seconds_count', { provider, outcome });
    expect(count('file-outbox', 'sent')).toBe(2);
    expect(count('fake-robot', 'sent')).toBe(1);
    expect(count('fake-robot', 'retryable')).toBe(1);
    expect(count('fake-robot', 'permanent')).toBe(1);
    expect(
      metrics.value('notify_gateway_delivery_attempt_duration_seconds_bucket', { provider: 'file-outbox', outcome: 'sent', le: '+Inf' }),
    ).toBe(2);
    expect(metrics.types.get('notify_gateway_delivery_attempt_duration_seconds')).toBe('histogram');
  });

  it('reads the queue from the database at scrape time: empty once everything is final', () => {
    for (const channel of ['DING', 'EMAIL', 'SMS']) expect(metrics.value('notify_gateway_queue_depth', { channel })).toBe(0);
    expect(metrics.value('notify_gateway_oldest_pending_age_seconds')).toBe(0);
    expect(metrics.types.get('notify_gateway_queue_depth')).toBe('gauge');
  });

  it('counts GraphQL operations by type and root field, and HTTP requests by method, route template and status', () => {
    expect(metrics.value('notify_gateway_graphql_operations_total', { transport: 'http', operation_type: 'mutation', operation: 'sendEmail', outcome: 'success' })).toBe(2);
    expect(metrics.value('notify_gateway_graphql_operations_total', { transport: 'http', operation_type: 'mutation', operation: 'sendDing', outcome: 'success' })).toBe(2);
    expect(metrics.value('notify_gateway_graphql_operation_duration_seconds_count', { operation_type: 'mutation', operation: 'sendEmail' })).toBe(2);
    expect(metrics.value('notify_gateway_http_requests_total', { method: 'POST', route: '/graphql', status_code: '200' })).toBe(4);
    expect(metrics.value('notify_gateway_http_requests_total', { method: 'GET', route: '*', status_code: '404' })).toBe(1);
    expect(metrics.value('notify_gateway_http_request_duration_seconds_count', { method: 'POST', route: '/graphql', status_code: '200' })).toBe(4);
    // The raw path never becomes a label.
    expect(metrics.text).not.toContain('/no/such/route');
  });

  it('includes the default process metrics, and counts its own scrapes from the next one', async () => {
    expect(metrics.value('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(metrics.value('nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(metrics.value('notify_gateway_http_requests_total', { method: 'GET', route: '/metrics', status_code: '200' })).toBeUndefined();
    const again = await scrape(base);
    expect(again.value('notify_gateway_http_requests_total', { method: 'GET', route: '/metrics', status_code: '200' })).toBe(1);
  });

  it('counts queries and failed operations by root field, however the client names them', async () => {
    const unique = `query Dashboard_${Date.now()} { deliveries(first: 1) { edges { node { id } } } }`;
    await gateway.graphql(unique);
    await gateway.graphql(`query Other { delivery(id: "dlv_nope") { id } deliveries(first: 1) { edges { node { id } } } }`);
    // An unexpected failure inside a resolver: an operation with errors.
    await gateway.graphql(`query { deliveries(first: 1, after: "not-a-cursor") { edges { node { id } } } }`);
    const after = await scrape(base);
    expect(after.value('notify_gateway_graphql_operations_total', { transport: 'http', operation_type: 'query', operation: 'deliveries', outcome: 'success' })).toBe(1);
    expect(after.value('notify_gateway_graphql_operations_total', { transport: 'http', operation_type: 'query', operation: '(multiple)', outcome: 'success' })).toBe(1);
    expect(after.value('notify_gateway_graphql_operations_total', { transport: 'http', operation_type: 'query', operation: 'deliveries', outcome: 'error' })).toBe(1);
    expect(after.text).not.toContain('Dashboard_');
  });
});

describe('queue depth, oldest pending age and rate-limit refusals', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await startGateway({ noDispatch: true, env: { RATE_LIMIT_PER_TOKEN_PER_MINUTE: '3' } });
    // Stopped, the dispatcher also ignores the kick of each send: everything stays QUEUED.
    await gateway.app.stop(0);
  });
  afterAll(() => gateway.close());

  it('shows pending deliveries by channel and the age of the oldest, and one refusal per refused send', async () => {
    const answers = [];
    for (let n = 0; n < 4; n += 1) {
      const { body } = await gateway.graphql(sendEmail, { input: { to: ['ops@example.com'], subject: `s${n}`, content: 'x', wait: false } });
      answers.push(body.data.sendEmail.__typename);
    }
    expect(answers).toEqual(['Delivery', 'Delivery', 'Delivery', 'RateLimitedError']);
    const hourAgo = Date.now() - 3_600_000;
    await gateway.store.insertDelivery({
      id: 'dlv_old0000000000000000000000',
      channel: 'SMS',
      status: 'RETRYING',
      provider: 'log',
      recipient: '+8613800138000',
      payload: '{}',
      callerId: 'env:1',
      attempts: 1,
      nextAttemptAt: Date.now() + 60_000,
      createdAt: hourAgo,
      updatedAt: hourAgo,
    });

    const metrics = parseScrape(await (await gateway.fetch('/metrics')).text());
    expect(metrics.value('notify_gateway_queue_depth', { channel: 'EMAIL' })).toBe(3);
    expect(metrics.value('notify_gateway_queue_depth', { channel: 'SMS' })).toBe(1);
    expect(metrics.value('notify_gateway_queue_depth', { channel: 'DING' })).toBe(0);
    const age = metrics.value('notify_gateway_oldest_pending_age_seconds')!;
    expect(age).toBeGreaterThanOrEqual(3600);
    expect(age).toBeLessThan(3600 + 300);
    expect(metrics.value('notify_gateway_rate_limit_refusals_total', { channel: 'EMAIL', scope: 'caller' })).toBe(1);
    // This app's own registry: the other gateway's sends are not here.
    expect(metrics.value('notify_gateway_deliveries_accepted_total', { channel: 'EMAIL', provider: 'file-outbox' })).toBe(3);
    expect(metrics.value('notify_gateway_deliveries_sent_total', { channel: 'EMAIL', provider: 'file-outbox' })).toBeUndefined();
  });

  it('answers NaN for the queue gauges when the database is gone, instead of stale numbers', async () => {
    const log = gateway.logs.length;
    await gateway.store.close();
    const response = await gateway.fetch('/metrics');
    expect(response.status).toBe(200);
    const metrics = parseScrape(await response.text());
    expect(metrics.value('notify_gateway_queue_depth', { channel: 'EMAIL' })).toBeNaN();
    expect(metrics.value('notify_gateway_oldest_pending_age_seconds')).toBeNaN();
    expect(metrics.value('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(gateway.logs.slice(log).some((line) => line.msg === 'queue depth unavailable for the metrics scrape')).toBe(true);
  });
});

describe('METRICS_PORT', () => {
  let gateway: TestGateway;
  let server: http.Server;
  let metricsBase: string;

  beforeAll(async () => {
    gateway = await startGateway({ env: { METRICS_PORT: '9464' } });
    // main.ts listens on METRICS_PORT with app.metricsHandler; here on a free port.
    server = http.createServer(gateway.app.metricsHandler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    metricsBase = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await gateway.close();
  });

  it('serves /metrics there and not on the main port', async () => {
    expect(gateway.config.metricsPort).toBe(9464);
    const main = await gateway.fetch('/metrics');
    expect(main.status).toBe(404);
    await gateway.graphql(sendEmail, { input: { to: ['ops@example.com'], subject: 's', content: 'x' } });
    const metrics = await scrape(metricsBase);
    expect(metrics.value('notify_gateway_deliveries_sent_total', { channel: 'EMAIL', provider: 'file-outbox' })).toBe(1);
    expect(metrics.value('notify_gateway_http_requests_total', { method: 'GET', route: '/metrics', status_code: '404' })).toBe(1);
    expect((await fetch(`${metricsBase}/healthz`)).status).toBe(404);
    expect((await fetch(`${metricsBase}/graphql`, { headers: { 'OPS-Token': testToken } })).status).toBe(404);
  });
});

describe('METRICS_PORT setting', () => {
  it('is optional, a port number, and not the main port', async () => {
    const { ConfigError, loadConfig } = await import('../../src/config');
    expect(loadConfig({}).metricsPort).toBeUndefined();
    expect(loadConfig({ METRICS_PORT: '' }).metricsPort).toBeUndefined();
    expect(loadConfig({ METRICS_PORT: '9464' }).metricsPort).toBe(9464);
    for (const [env, problem] of [
      [{ METRICS_PORT: 'nine' }, /^METRICS_PORT: /],
      [{ METRICS_PORT: '70000' }, /^METRICS_PORT: /],
      [{ PORT: '9464', METRICS_PORT: '9464' }, /^METRICS_PORT: must differ from PORT/],
    ] as const) {
      try {
        loadConfig(env);
        expect.unreachable(`accepted ${JSON.stringify(env)}`);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as InstanceType<typeof ConfigError>).problems).toEqual([expect.stringMatching(problem)]);
      }
    }
  });
});
