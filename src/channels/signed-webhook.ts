import type { Logger } from '../logger';
import { notImplemented, type Channel, type SendContext, type SendResult, type WebhookMessage } from './channel';

export interface SignedWebhookOptions {
  /** WEBHOOK_ALLOWED_HOSTS: hosts exempt from the SSRF refusal of loopback, private, link-local and metadata addresses. */
  allowedHosts: string[];
  timeoutMs: number;
  logger?: Logger;
}

/**
 * Signed outgoing webhook (Standard Webhooks), providers.md §8. A stub: the channel's engineer writes `send` (with
 * provider-http.ts: `createProviderHttp`, `requestText`, `transportFailure`, `unexpectedAnswer`).
 */
export class SignedWebhookChannel implements Channel<'WEBHOOK'> {
  readonly channel = 'WEBHOOK';
  readonly provider = 'webhook';
  readonly development = false;

  constructor(readonly options: SignedWebhookOptions) {}

  async send(_message: WebhookMessage, _context: SendContext): Promise<SendResult> {
    throw notImplemented(this.channel);
  }
}
