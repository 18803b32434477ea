import http from 'node:http';
import https from 'node:https';
import got, { type ExtendOptions, type Got } from 'got';

export interface ProviderHttp {
  client: Got;
  close(): void;
}

/**
 * The one way channels talk HTTP to a provider: keep-alive agents, one request timeout, no redirects, and no retries
 * (the dispatcher owns retries, backoff and the attempt log; several provider APIs are not idempotent).
 */
export function createProviderHttp(timeoutMs: number, options: ExtendOptions = {}): ProviderHttp {
  const agents = {
    http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 64 }),
  };
  const client = got.extend({
    timeout: { request: timeoutMs },
    retry: { limit: 0 },
    throwHttpErrors: false,
    followRedirect: false,
    agent: agents,
    ...options,
  });
  return {
    client,
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}
