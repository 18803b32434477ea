import { auditServer } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, testToken, type TestGateway } from '../support/gateway';

describe('GraphQL over HTTP: the graphql-http audit of /graphql', () => {
  let gateway: TestGateway;
  let url: string;

  beforeAll(async () => {
    gateway = await startGateway({ noDispatch: true });
    url = `${await gateway.listen()}/graphql`;
  });
  afterAll(() => gateway.close());

  it('passes every audit, each with the status ok', async () => {
    // The audit's requests carry no credentials of their own; without OPS-Token every one would be a 401.
    const fetchFn = (input: RequestInfo | URL, init: RequestInit = {}) => {
      const headers = new Headers(init.headers);
      headers.set('OPS-Token', testToken);
      return fetch(input, { ...init, headers, signal: AbortSignal.timeout(5_000) });
    };
    const results = await auditServer({ url, fetchFn });

    expect(results.length).toBeGreaterThanOrEqual(60);
    const failed = results.flatMap((result) => (result.status === 'ok' ? [] : [`${result.status}: ${result.name}: ${result.reason}`]));
    expect(failed, failed.join('\n')).toEqual([]);
  });
});
