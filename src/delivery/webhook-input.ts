import type { WebhookMessage } from '../channels/channel';
import { ValidationError } from '../errors';
import type { PreparedDelivery } from './input-rules';

/**
 * The signed webhook input (`sendWebhook` and its REST route): validates and splits what the caller sent into the message, a
 * non-secret recipient label, the payload shown through the API, and the secrets sealed at rest (`secret`, and the URL when it carries a token).
 * Not written yet: every input is refused, so nothing is recorded for a channel that cannot send. The channel's
 * engineer replaces the body with a zod schema built from input-rules.ts (`parse`, `asciiToken`, `requiredText`, …),
 * checking sizes here, before anything is recorded.
 */
export function prepareWebhook(_input: unknown): PreparedDelivery<WebhookMessage> {
  throw new ValidationError([{ path: 'input', message: 'WEBHOOK sending is not available yet' }]);
}
