import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeForm, MalformedParameterError } from '../../src/rest/form-decoding';
import { legacyTarget } from '../../src/rest/legacy-entries';
import { isLegacyPath } from '../../src/rest/legacy-routes';
import { startGateway, testToken, type TestGateway } from '../support/gateway';
import { legacyRequest, query } from './legacy-client';

/** What the URL parser makes of a target, as the fetch entry sees it. */
function parsedTarget(target: string) {
  const url = new URL(`http://gateway.test${target}`);
  return isLegacyPath(url.pathname) ? { pathname: url.pathname, query: url.search.slice(1) } : undefined;
}

/** The pairs, or the parameter a refusal names (it quotes the malformed sequence as sent, or as re-encoded). */
const parameters = (queryString: string) => {
  try {
    return decodeForm(queryString, 'query string');
  } catch (error) {
    return error instanceof MalformedParameterError ? { refused: error.parameter } : error;
  }
};

describe('legacyTarget (the listener reads the target itself)', () => {
  it('owns the paths the URL parser would give the legacy routes, and no other', () => {
    const targets = [
      '/api/third/email/sendMsg?email=a%40b.c&content=x',
      '/api/third/email/sendMsg/?content=x',
      '/api/third/email/sendMsg',
      '/api/third/email/sendMsg?',
      '/api/third/email/sendMsg#top',
      '/api/third/email/sendMsg?content=x#frag?ment',
      '/api/third',
      '/api/third/',
      '/api/third/ding/send',
      '/api/third/x/../email/sendMsg?content=x',
      '/api/third/%65mail/sendMsg?content=x',
      '/api/third/email//sendMsg',
      '/api/thirdparty/email/sendMsg',
      '/api/third/../../graphql',
      '/graphql',
    ];
    for (const target of targets) {
      const expected = parsedTarget(target);
      const actual = legacyTarget(target);
      expect(actual?.pathname, target).toBe(expected?.pathname);
      if (expected) expect(parameters(actual!.query), target).toEqual(parameters(expected.query));
    }
  });

  it('reads the same parameters from a query as written as the URL parser does from its re-encoded one', () => {
    const character = fc.constantFrom(...'aZ09%+=&?"\'<>{}|^`\\ä中😀~!$()*,;:@/'.split(''), '%2B', '%25', '%E4%B8%AD', '%ZZ', '%C0%AF');
    fc.assert(
      fc.property(fc.array(character, { maxLength: 16 }), (characters) => {
        const target = `/api/third/email/sendMsg?${characters.join('')}`;
        expect(parameters(legacyTarget(target)!.query)).toEqual(parameters(parsedTarget(target)!.query));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('both entries serve the legacy routes alike', () => {
  let gateway: TestGateway;
  let base: string;
  const requestLines = () => gateway.logs.filter((line) => line.msg === 'request');

  beforeAll(async () => {
    gateway = await startGateway({ noDispatch: true, env: { SEND_WAIT_MS: '0' } });
    base = await gateway.listen();
  });
  afterAll(() => gateway.close());

  it('app.fetch accepts a send from the query string and from a JSON body, as the listener does', async () => {
    const path = `/api/third/email/sendMsg?${query({ email: 'fetch@example.com', content: 'over fetch' })}`;
    const fetched = await gateway.fetch(path, { headers: { 'OPS-Token': testToken, 'X-Request-Id': 'fetch-1' } });
    expect(fetched.status).toBe(200);
    expect(fetched.headers.get('x-request-id')).toBe('fetch-1');
    expect(fetched.headers.get('cache-control')).toBe('no-store');
    expect(await fetched.json()).toEqual({ code: 1000, data: 'queued: the first attempt is still under way', deliveryId: expect.any(String) });

    const posted = await gateway.fetch('/api/third/email/sendMsg', {
      method: 'POST',
      headers: { 'OPS-Token': testToken, 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'fetch@example.com', content: 'posted' }),
    });
    expect((await posted.json()).code).toBe(1000);

    const listened = await legacyRequest(base, path, { headers: { 'X-Request-Id': 'node-1' } });
    expect(listened.status).toBe(200);
    expect(listened.headers['x-request-id']).toBe('node-1');
    expect(listened.headers['cache-control']).toBe('no-store');
    expect(listened.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(listened.body.code).toBe(1000);
  });

  it('the listener writes one request line with the same fields, and the HTTP metrics', async () => {
    await legacyRequest(base, `/api/third/email/sendMsg?${query({ email: 'log@example.com', content: 'x' })}`, {
      headers: { 'X-Request-Id': 'node-line' },
    });
    const lines = requestLines().filter((line) => line.requestId === 'node-line');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, component: 'http', method: 'GET', route: '/api/third/email/sendMsg', status: 200 });
    expect(Object.keys(lines[0]!).sort()).toEqual(
      ['component', 'durationMs', 'level', 'method', 'msg', 'requestId', 'route', 'service', 'status', 'time'].sort(),
    );
    const metrics = await (await gateway.fetch('/metrics')).text();
    expect(metrics).toMatch(/notify_gateway_http_requests_total\{method="GET",route="\/api\/third\/email\/sendMsg",status_code="200"\} \d+/);
  });

  it('refuses a cross-site browser request on either entry, a navigation too, recording nothing', async () => {
    const headers = { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', accept: 'text/html' };
    const path = `/api/third/email/sendMsg?${query({ email: 'csrf@example.com', content: 'x' })}`;
    const listened = await legacyRequest(base, path, { headers });
    expect(listened.status).toBe(403);
    expect(listened.body).toEqual({ code: 1003, data: 'Cross-site browser requests are refused' });
    const fetched = await gateway.fetch(path, { headers: { ...headers, 'OPS-Token': testToken } });
    expect(fetched.status).toBe(403);
    expect(await fetched.json()).toEqual({ code: 1003, data: 'Cross-site browser requests are refused' });
    const recorded = gateway.store.db.$client.prepare("select count(*) as n from deliveries where recipient = 'csrf@example.com'").get() as { n: number };
    expect(recorded.n).toBe(0);
  });

  it('serves a target whose path only normalises to a route, through the fetch entry', async () => {
    const { body } = await legacyRequest(base, `/api/third/x/../email/sendMsg?${query({ email: 'dots@example.com', content: 'x' })}`);
    expect(body.code).toBe(1000);
  });
});
