import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/auth';
import { graphqlLimits } from '../../src/graphql/yoga';
import { startGateway, testToken, type TestGateway } from '../support/gateway';

const everyField = `id channel status provider recipient attempts providerMessageId idempotencyKey lastError { code message }
  nextAttemptAt createdAt updatedAt sentAt attemptLog { number startedAt outcome providerCode providerMessage durationMs }`;
const fullPage = `deliveries(first: 100) { edges { cursor node { ${everyField} } } pageInfo { hasNextPage endCursor } }`;
const countRows = (gateway: TestGateway) =>
  (gateway.store.db.$client.prepare('select count(*) as n from deliveries').get() as { n: number }).n;

/** POSTs raw bytes over a real socket, optionally without Content-Length (chunked). */
function post(base: string, path: string, body: Buffer, { chunked = false, headers = {} as Record<string, string> } = {}) {
  const { hostname, port } = new URL(base);
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const request = http.request(
      {
        hostname,
        port,
        path,
        method: 'POST',
        agent: false,
        headers: {
          'content-type': 'application/json',
          'OPS-Token': testToken,
          ...(chunked ? {} : { 'content-length': String(body.length) }),
          ...headers,
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode!, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    // The gateway may answer 413 and close before the whole body is written.
    request.on('error', reject);
    for (let offset = 0; offset < body.length; offset += 64 * 1024) request.write(body.subarray(offset, offset + 64 * 1024));
    request.end();
  });
}

describe('GraphQL limits (graphql-armor)', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway({ noDispatch: true });
  });
  afterAll(() => gateway.close());

  const refused = async (query: string, pattern: RegExp) => {
    // A client that accepts application/graphql-response+json learns it from the status too (GraphQL over HTTP).
    const { status, body } = await gateway.graphql(query, undefined, { headers: { accept: 'application/graphql-response+json' } });
    expect(status).toBe(400);
    expect(body.data ?? undefined).toBeUndefined();
    expect(body.errors?.map((error) => error.message).join('\n')).toMatch(pattern);
  };

  it('accepts the largest legitimate query: a full page of 100 with every field', async () => {
    const { status, body } = await gateway.graphql(`{ ${fullPage} }`);
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    expect(body.data.deliveries.edges).toEqual([]);
  });

  it(`refuses a query deeper than ${graphqlLimits.maxDepth}`, async () => {
    let selection = 'name';
    for (let level = 0; level < graphqlLimits.maxDepth; level += 1) selection = `ofType { ${selection} }`;
    await refused(`{ __type(name: "Delivery") { fields { type { ${selection} } } } }`, /depth limit of 8 exceeded/);
  });

  it(`refuses more than ${graphqlLimits.maxAliases} aliases`, async () => {
    const aliases = Array.from({ length: graphqlLimits.maxAliases + 1 }, (_, index) => `a${index}: delivery(id: "dlv_${index}") { id }`);
    await refused(`{ ${aliases.join(' ')} }`, /Aliases limit of 15 exceeded/);
  });

  it(`refuses a query costing more than ${graphqlLimits.maxCost} (two full pages)`, async () => {
    await refused(`{ a: ${fullPage} b: ${fullPage} }`, /Cost limit of 20000 exceeded/);
  });

  it(`refuses more than ${graphqlLimits.maxTokens} tokens`, async () => {
    await refused(`{ ${'__typename '.repeat(graphqlLimits.maxTokens)} }`, /Token limit of 1000 exceeded/);
  });

  it(`refuses more than ${graphqlLimits.maxDirectives} directives`, async () => {
    await refused(`{ ${'__typename @skip(if: false) '.repeat(graphqlLimits.maxDirectives + 1)} }`, /Directives limit of 10 exceeded/);
  });

  it('refuses an overlong mutation batch by aliases too, and records nothing', async () => {
    const sends = Array.from(
      { length: graphqlLimits.maxAliases + 1 },
      (_, index) => `s${index}: sendEmail(input: { to: ["a@example.com"], content: "x", wait: false }) { __typename }`,
    );
    await refused(`mutation { ${sends.join(' ')} }`, /Aliases limit/);
    expect(countRows(gateway)).toBe(0);
  });
});

describe('request body limit', () => {
  let gateway: TestGateway;
  let base: string;
  beforeAll(async () => {
    gateway = await startGateway({ noDispatch: true, env: { SEND_WAIT_MS: '0' } });
    base = await gateway.listen();
  });
  afterAll(() => gateway.close());

  const sendEmail = (content: string) =>
    Buffer.from(
      JSON.stringify({
        query: 'mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { id } } }',
        variables: { input: { to: ['ops@example.com'], content } },
      }),
    );

  it('answers 413 PAYLOAD_TOO_LARGE to a body over 1 MiB with Content-Length, over a real port, recording nothing', async () => {
    const { status, text } = await post(base, '/graphql', sendEmail('x'.repeat(1_100_000)));
    expect(status).toBe(413);
    expect(JSON.parse(text).errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
    expect(countRows(gateway)).toBe(0);
  });

  it('answers 413 to a chunked body (no Content-Length) once it passes 1 MiB', async () => {
    const { status, text } = await post(base, '/graphql', sendEmail('y'.repeat(1_100_000)), { chunked: true });
    expect(status).toBe(413);
    expect(JSON.parse(text).errors[0].message).toMatch(/larger than 1048576 bytes/);
    expect(countRows(gateway)).toBe(0);
  });

  it('accepts a body just under the limit: the longest plain-text email (256,000 characters)', async () => {
    const { status, text } = await post(base, '/graphql', sendEmail('z'.repeat(256_000)), { chunked: true });
    expect(status).toBe(200);
    expect(JSON.parse(text).data.sendEmail.__typename).toBe('Delivery');
    expect(countRows(gateway)).toBe(1);
  });

  it('honours BODY_LIMIT_BYTES', async () => {
    const small = await startGateway({ noDispatch: true, env: { BODY_LIMIT_BYTES: '2048', SEND_WAIT_MS: '0' } });
    try {
      const response = await small.fetch('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'OPS-Token': testToken },
        body: sendEmail('x'.repeat(3000)),
      });
      expect(response.status).toBe(413);
      expect((await small.graphql('{ __typename }')).status).toBe(200);
    } finally {
      await small.close();
    }
  });
});

describe('introspection', () => {
  const introspect = '{ __schema { queryType { name } } }';

  it('is on by default (NODE_ENV=test) and GraphiQL is served', async () => {
    const gateway = await startGateway({ noDispatch: true });
    try {
      const { body } = await gateway.graphql(introspect);
      expect(body.data.__schema.queryType.name).toBe('Query');
      expect((await gateway.fetch('/graphql', { headers: { accept: 'text/html' } })).status).toBe(200);
    } finally {
      await gateway.close();
    }
  });

  it('is off with NODE_ENV=production: __schema and __type refused, no GraphiQL, no field suggestions', async () => {
    const gateway = await startGateway({ noDispatch: true, env: { NODE_ENV: 'production' } });
    try {
      for (const query of [introspect, '{ __type(name: "Delivery") { name } }']) {
        const { body } = await gateway.graphql(query);
        expect(body.data ?? undefined).toBeUndefined();
        expect(body.errors![0].message).toMatch(/introspection/i);
      }
      const page = await gateway.fetch('/graphql', { headers: { accept: 'text/html' } });
      expect(await page.text()).not.toMatch(/graphiql/i);
      const { body } = await gateway.graphql('{ deliverie { totalCount } }');
      expect(body.errors![0].message).not.toMatch(/Did you mean/);
      // __typename is not introspection of the schema: clients rely on it.
      expect((await gateway.graphql('{ __typename }')).body.data).toEqual({ __typename: 'Query' });
    } finally {
      await gateway.close();
    }
  });

  it('is on in production with GRAPHQL_INTROSPECTION=true', async () => {
    const gateway = await startGateway({ noDispatch: true, env: { NODE_ENV: 'production', GRAPHQL_INTROSPECTION: 'true' } });
    try {
      expect((await gateway.graphql(introspect)).body.data.__schema.queryType.name).toBe('Query');
    } finally {
      await gateway.close();
    }
  });
});

describe('CSRF and CORS', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway({ noDispatch: true, env: { SEND_WAIT_MS: '0' } });
  });
  afterAll(() => gateway.close());

  const mutation = JSON.stringify({ query: 'mutation { sendEmail(input: { to: ["a@example.com"], content: "x" }) { __typename } }' });

  it('refuses a cross-site browser request even when it carries a token (a proxy that adds one, say)', async () => {
    for (const site of ['cross-site', 'same-site']) {
      const response = await gateway.fetch('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'text/plain', 'OPS-Token': testToken, 'sec-fetch-site': site, origin: 'https://evil.example' },
        body: mutation,
      });
      expect(response.status).toBe(403);
      expect((await response.json()).errors[0].extensions.code).toBe('FORBIDDEN');
    }
    expect(countRows(gateway)).toBe(0);
  });

  it('refuses it over a real port too, where a JSON POST is served from node:http without the fetch adapter', async () => {
    const base = await gateway.listen();
    for (const site of ['cross-site', 'same-site']) {
      const response = await fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'OPS-Token': testToken, 'sec-fetch-site': site },
        body: mutation,
      });
      expect(response.status).toBe(403);
      expect((await response.json()).errors[0].extensions.code).toBe('FORBIDDEN');
    }
    expect(countRows(gateway)).toBe(0);
  });

  it('refuses a cross-site request to the legacy REST routes with code 1003, recording nothing', async () => {
    const response = await gateway.fetch('/api/third/email/sendMsg?email=a%40example.com&content=x', {
      headers: { 'OPS-Token': testToken, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' },
    });
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ code: 1003, data: 'Cross-site browser requests are refused' });
    expect(countRows(gateway)).toBe(0);
  });

  it('still opens GraphiQL from a link on another site, and GraphiQL itself (same-origin) works', async () => {
    const page = await gateway.fetch('/graphql', {
      headers: { accept: 'text/html', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' },
    });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/graphiql/i);
    const { status, body } = await gateway.graphql('{ __typename }', {}, { headers: { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' } });
    expect(status).toBe(200);
    expect(body.data).toEqual({ __typename: 'Query' });
  });

  it('grants no CORS: no Access-Control-Allow-* on a preflight or on an answer', async () => {
    const preflight = await gateway.fetch('/graphql', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'ops-token' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(preflight.headers.get('access-control-allow-headers')).toBeNull();
    const { status } = await gateway.graphql('{ __typename }', {}, { headers: { origin: 'https://evil.example' } });
    expect(status).toBe(200);
    const answer = await gateway.fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'OPS-Token': testToken, origin: 'https://evil.example' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(answer.headers.get('access-control-allow-origin')).toBeNull();
    expect(answer.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('refuses a form post without a token (what a hostile page can send) with 401, recording nothing', async () => {
    const response = await gateway.fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `query=${encodeURIComponent('mutation { sendEmail(input: { to: ["a@example.com"], content: "x" }) { __typename } }')}`,
    });
    expect(response.status).toBe(401);
    expect(countRows(gateway)).toBe(0);
  });
});

describe('unexpected errors are masked, even with NODE_ENV=development', () => {
  let gateway: TestGateway;
  const nodeEnv = process.env.NODE_ENV;
  beforeAll(async () => {
    // Yoga reads process.env.NODE_ENV itself to decide whether to show error details.
    process.env.NODE_ENV = 'development';
    gateway = await startGateway({ noDispatch: true, env: { NODE_ENV: 'development', SEND_WAIT_MS: '0' } });
  });
  afterAll(async () => {
    process.env.NODE_ENV = nodeEnv;
    await gateway.close();
  });

  it('answers "Unexpected error." without the SQL, a stack or a path, and logs the cause', async () => {
    const sent = await gateway.graphql('mutation { sendEmail(input: { to: ["a@example.com"], content: "x" }) { ... on Delivery { id } } }');
    const id = sent.body.data.sendEmail.id;
    // A real SQL failure underneath a resolver.
    gateway.store.db.$client.exec('drop table delivery_attempts');
    const { status, body } = await gateway.graphql('query($id: ID!) { delivery(id: $id) { id attemptLog { number } } }', { id });
    expect(status).toBe(200);
    const text = JSON.stringify(body);
    expect(body.errors![0].message).toBe('Unexpected error.');
    for (const leak of [/delivery_attempts/, /sqlite/i, /no such table/i, /\.ts\b/, /node_modules/, /\bat \w/, /stack/i, /originalError/]) {
      expect(text).not.toMatch(leak);
    }
    expect(JSON.stringify(gateway.logs)).toMatch(/no such table: delivery_attempts/);
  });

  it('keeps a gateway error thrown outside an error union: its code and message, nothing else', async () => {
    const reader = await startGateway({ noDispatch: true, env: { NODE_ENV: 'development' } });
    try {
      await reader.store.insertToken({
        id: 'tok_noread',
        name: 'no-read',
        tokenHash: hashToken('no-read-token'),
        scopes: JSON.stringify({ channels: ['EMAIL'], read: 'none' }),
        createdAt: Date.now(),
        revokedAt: null,
        lastUsedAt: null,
      });
      const { body } = await reader.graphql('{ deliveries(first: 1) { edges { node { id } } } }', {}, { token: 'no-read-token' });
      expect(body.errors![0]).toMatchObject({ message: 'This token may not read deliveries', extensions: { code: 'FORBIDDEN' } });
    } finally {
      await reader.close();
    }
  });

  it('does not quote a refused variable value back (a robot secret in the wrong place)', async () => {
    const secret = 'SECd0d1e2f3a4b5c6d7e8f9-misplaced';
    const { body } = await gateway.graphql(
      'mutation($input: SendDingInput!) { sendDing(input: $input) { __typename } }',
      { input: { accessToken: [secret], secret: { nested: secret }, content: 'x', msgType: secret } },
    );
    expect(body.errors!.length).toBeGreaterThan(0);
    expect(body.errors![0].message).toMatch(/^Variable "\$input" got invalid value at "input\.(accessToken|secret|msgType)"/);
    expect(JSON.stringify(body)).not.toContain(secret);
    expect(JSON.stringify(gateway.logs)).not.toContain(secret);
  });
});
