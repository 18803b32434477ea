import crypto from 'node:crypto';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { ValidationError } from '../errors';
import type { Logger } from '../logger';
import { ChannelError, type Channel, type SendContext, type SendResult, type WebhookMessage } from './channel';
import { createProviderHttp, redact, transportFailure, type ProviderHttp } from './provider-http';
import { DestinationPolicy, DestinationRefusedError, type Resolver } from './webhook-destination';

export const webhookSecretPrefix = 'whsec_';

/**
 * Standard Webhooks signature (https://www.standardwebhooks.com, "Signature scheme"):
 * `v1,` + Base64(HMAC-SHA256(key = base64decode(secret without "whsec_"), id + "." + timestamp + "." + body)).
 */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  const key = Buffer.from(secret.startsWith(webhookSecretPrefix) ? secret.slice(webhookSecretPrefix.length) : secret, 'base64');
  return `v1,${crypto.createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`, 'utf8').digest('base64')}`;
}

/** The headers of one attempt: the id is the delivery's (the same on every attempt), the timestamp the attempt's. */
export function webhookHeaders(secret: string, id: string, timestampSeconds: number, body: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': signWebhook(secret, id, timestampSeconds, body),
  };
}

/** `Retry-After` as delay-seconds or an HTTP date, in milliseconds from `now`; undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date (IMF-fixdate, or the obsolete forms Date.parse reads): it names a weekday or a month.
  if (!/[a-z]{3}/i.test(text)) return undefined;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The longest Retry-After honoured: a receiver cannot park a delivery for days. */
export const maxRetryAfterMs = 60 * 60_000;

/**
 * How the gateway treats a receiver's status (Standard Webhooks retry convention): 2xx sent; 408, 429 and 5xx retried
 * (429 as rate-limited, both honouring Retry-After); 3xx permanent, since redirects are not followed (a redirect could
 * lead to an address the SSRF rules refuse); 410 Gone and every other 4xx permanent.
 */
export function classifyWebhookStatus(
  statusCode: number,
  retryAfter?: string,
  now = Date.now(),
): { kind: 'sent' } | { kind: ChannelError['kind']; retryAfterMs?: number; reason: string } {
  if (statusCode >= 200 && statusCode < 300) return { kind: 'sent' };
  const delay = retryAfterMs(retryAfter, now);
  const capped = delay === undefined ? undefined : Math.min(delay, maxRetryAfterMs);
  if (statusCode === 429) return { kind: 'rate_limited', retryAfterMs: capped, reason: 'too many requests' };
  if (statusCode === 408 || statusCode >= 500) {
    return { kind: 'retryable', retryAfterMs: capped, reason: statusCode === 408 ? 'request timeout' : 'server error' };
  }
  if (statusCode >= 300 && statusCode < 400) {
    return { kind: 'permanent', reason: 'a redirect, which is not followed: give the final URL' };
  }
  if (statusCode === 410) return { kind: 'permanent', reason: 'gone: the receiver asks not to send again' };
  return { kind: 'permanent', reason: statusCode >= 400 && statusCode < 500 ? 'refused' : 'not a success' };
}

export interface SignedWebhookOptions {
  /** WEBHOOK_ALLOWED_HOSTS: hosts exempt from the SSRF refusal of loopback, private, link-local and metadata addresses. */
  allowedHosts: string[];
  timeoutMs: number;
  logger?: Logger;
  /** How host names are resolved (tests inject one); the system resolver (dns.lookup, all addresses) by default. */
  resolve?: Resolver;
  /** The clock of `webhook-timestamp` (tests). */
  now?: () => number;
}

/** How long a send waits for DNS before recording anyway (the attempt checks again). */
const validationLookupMs = 2000;

/** The most of a receiver's answer body the gateway reads. */
const answerLimitBytes = 64 * 1024;

/** How much of a receiver's answer is kept in the attempt log. */
const answerSnippetLength = 200;

/** Signed outgoing webhook (Standard Webhooks). */
export class SignedWebhookChannel implements Channel<'WEBHOOK'> {
  readonly channel = 'WEBHOOK';
  readonly provider = 'webhook';
  readonly development = false;
  readonly destinations: DestinationPolicy;
  private readonly http: ProviderHttp;
  private readonly now: () => number;

  constructor(readonly options: SignedWebhookOptions) {
    this.now = options.now ?? Date.now;
    this.destinations = new DestinationPolicy(options.allowedHosts, options.resolve);
    // Redirects are never followed (createProviderHttp): each hop would need the same address check.
    this.http = createProviderHttp(options.timeoutMs, {
      dnsLookup: this.destinations.lookup as never,
      headers: { 'user-agent': 'notify-gateway-webhook' },
    });
  }

  /**
   * Refuses before recording a URL whose host is a refused literal address, or a name that resolves to one now. A
   * name that does not resolve (yet) is accepted: DNS may be down for a moment, and each attempt checks again.
   */
  async validate(message: WebhookMessage): Promise<void> {
    const { hostname } = new URL(message.url);
    if (this.destinations.isAllowed(hostname)) return;
    let giveUp!: () => void;
    const gaveUp = new Promise<void>((resolve) => (giveUp = resolve));
    const timer = setTimeout(giveUp, validationLookupMs);
    try {
      await Promise.race([this.destinations.check(hostname), gaveUp]);
    } catch (error) {
      if (error instanceof DestinationRefusedError) throw new ValidationError([{ path: 'url', message: error.message }]);
    } finally {
      clearTimeout(timer);
    }
  }

  async send(message: WebhookMessage, context: SendContext): Promise<SendResult> {
    const url = new URL(message.url);
    // What a receiver's answer might echo: the secret, and the query (and each of its longer values, often a token).
    const secrets = [message.secret, url.search.slice(1), ...[...url.searchParams.values()].filter((value) => value.length >= 6)];
    try {
      this.destinations.checkLiteral(url.hostname);
    } catch (error) {
      throw refused(error as DestinationRefusedError);
    }
    const body = JSON.stringify(message.body);
    const headers = webhookHeaders(message.secret, context.deliveryId, Math.floor(this.now() / 1000), body);
    let response: { statusCode: number; body: string; headers: Record<string, string | string[] | undefined> };
    // The status and headers as soon as they arrive: an answer body past `answerLimitBytes` is not read (a receiver
    // could otherwise stream into the gateway's memory until the timeout), and its status is what counts.
    let head: Omit<typeof response, 'body'> | undefined;
    const request = this.http.client.post(url, { body, headers, signal: context.signal });
    // The socket's own response event: got's promise tells of the response only once the body is read.
    request.on('request', (outgoing: ClientRequest) =>
      outgoing.once('response', (answer: IncomingMessage) => (head = { statusCode: answer.statusCode ?? 0, headers: answer.headers })),
    );
    request.on('downloadProgress', ({ transferred }: { transferred: number }) => {
      if (transferred > answerLimitBytes) request.cancel();
    });
    try {
      response = await request;
    } catch (error) {
      if (head && request.isCanceled) {
        response = { ...head, body: '' };
      } else {
        const cause = findRefusal(error);
        if (cause) throw refused(cause);
        // Never got's message: it can carry the URL, and the URL a token in its query.
        throw transportFailure(error, 'The webhook receiver', this.http.timeoutMs);
      }
    }
    const verdict = classifyWebhookStatus(response.statusCode, header(response.headers['retry-after']), Date.now());
    if (verdict.kind === 'sent') return {};
    const said = redact(response.body.trim().replace(/\s+/g, ' '), secrets, '[redacted]');
    const snippet = said ? `: ${said.length > answerSnippetLength ? `${said.slice(0, answerSnippetLength)}…` : said}` : '';
    throw new ChannelError(
      verdict.kind,
      `HTTP_${response.statusCode}`,
      `The webhook receiver answered HTTP ${response.statusCode} (${verdict.reason})${snippet}`,
      verdict.retryAfterMs,
    );
  }

  async close() {
    this.http.close();
  }
}

const header = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

function refused(error: DestinationRefusedError): ChannelError {
  return new ChannelError('permanent', error.code, error.message);
}

/** The refusal thrown by the lookup, wherever got wrapped it. */
function findRefusal(error: unknown): DestinationRefusedError | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current instanceof DestinationRefusedError) return current;
  }
  return undefined;
}
