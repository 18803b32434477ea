import http from 'node:http';
import https from 'node:https';
import got, { RequestError, type ExtendOptions, type Got } from 'got';
import { ChannelError } from './channel';

export interface ProviderHttp {
  client: Got;
  /** The request timeout, named in the message of a request that timed out. */
  timeoutMs: number;
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
    timeoutMs,
    close() {
      agents.http.destroy();
      agents.https.destroy();
    },
  };
}

/**
 * Removes every secret from a provider's text (an errmsg that echoes a token, say), raw, JSON-escaped or
 * percent-encoded once or twice. Also drops Aliyun's echo of its whole string-to-sign (SignatureDoesNotMatch), which
 * carries the template parameters.
 */
export function redact(text: string, secrets: readonly (string | undefined)[], mask = '***'): string {
  let result = text.replace(/\s*server string to sign is:.*$/s, '');
  for (const secret of secrets) {
    if (!secret) continue;
    const once = encodeURIComponent(secret);
    for (const form of new Set([secret, JSON.stringify(secret).slice(1, -1), once, encodeURIComponent(once)])) {
      result = result.split(form).join(mask);
    }
  }
  return result;
}

/**
 * A request that never got an answer: timeouts, refused or reset connections, DNS. Always worth another attempt.
 * The message never carries the URL or the request: both can hold a token or a code.
 */
export function transportFailure(error: unknown, provider: string, timeoutMs?: number): ChannelError {
  const code =
    error instanceof RequestError && error.code
      ? error.code
      : error instanceof Error && error.name === 'AbortError'
        ? 'ABORTED'
        : 'ECONNECTION';
  const reason =
    code === 'ETIMEDOUT' && timeoutMs !== undefined
      ? `${provider} did not answer within ${timeoutMs} ms`
      : code === 'ABORTED' || code === 'ERR_ABORTED' || code === 'ABORT_ERR'
        ? 'the attempt was aborted'
        : `${provider} could not be reached (${code})`;
  return new ChannelError('retryable', code, reason);
}

/** HTTP statuses that say "not now" whatever the body: 408, 429 and 5xx. */
export function isRetryableStatus(statusCode: number): boolean {
  return statusCode >= 500 || statusCode === 429 || statusCode === 408;
}

/**
 * An answer that is not the provider's own (a proxy's or load balancer's page, or JSON without the expected fields):
 * `HTTP_<status>`, retryable for 408, 429 and 5xx, permanent otherwise. `missing` names what was not there.
 */
export function unexpectedAnswer(provider: string, statusCode: number, missing?: string): ChannelError {
  const kind = isRetryableStatus(statusCode) ? 'retryable' : 'permanent';
  return new ChannelError(kind, `HTTP_${statusCode}`, `${provider} answered HTTP ${statusCode}${missing ? ` without ${missing}` : ''}`);
}

/** Makes the request; no answer becomes `transportFailure`. */
export async function requestText(
  provider: string,
  request: () => Promise<{ statusCode: number; body: string }>,
  timeoutMs?: number,
): Promise<{ statusCode: number; body: string }> {
  try {
    const { statusCode, body } = await request();
    return { statusCode, body };
  } catch (error) {
    throw transportFailure(error, provider, timeoutMs);
  }
}

/** Parses a provider's JSON answer; `undefined` when the body is not JSON. */
export function parseJson<T>(body: string): T | undefined {
  try {
    return JSON.parse(body) as T;
  } catch {
    return undefined;
  }
}

/**
 * Makes the request and reads the provider's JSON answer: no answer becomes `transportFailure`, an answer that is not
 * JSON `unexpectedAnswer`.
 */
export async function requestJson<T>(
  provider: string,
  request: () => Promise<{ statusCode: number; body: string }>,
  timeoutMs?: number,
): Promise<{ statusCode: number; answer: T }> {
  const { statusCode, body } = await requestText(provider, request, timeoutMs);
  const answer = parseJson<T>(body);
  if (answer === undefined) throw unexpectedAnswer(provider, statusCode, 'its JSON body');
  return { statusCode, answer };
}
