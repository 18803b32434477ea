import { z } from 'zod';
import type { JsonValue, WebhookMessage } from '../channels/channel';
import { webhookSecretPrefix } from '../channels/signed-webhook';
import { httpUrl, parse, requiredLine, type PreparedDelivery } from './input-rules';

/** The largest webhook body, as serialized JSON: the receiver gets exactly these bytes, and the API shows them. */
export const webhookBodyLimitBytes = 256 * 1024;

const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard Webhooks secrets: `whsec_` and the Base64 of a random key of 24 to 64 bytes. */
const webhookSecret = requiredLine(200).refine((value) => {
  if (!value.startsWith(webhookSecretPrefix)) return false;
  const encoded = value.slice(webhookSecretPrefix.length);
  if (!base64.test(encoded)) return false;
  const bytes = Buffer.from(encoded, 'base64').length;
  return bytes >= 24 && bytes <= 64;
}, 'must be whsec_ followed by the Base64 of a 24- to 64-byte key');

const webhookUrl = httpUrl.superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return; // httpUrl has said it
  }
  if (url.username || url.password) {
    ctx.addIssue({ code: 'custom', message: 'must not carry credentials (user:password@): put a token in the query, or sign' });
  }
});

/** Any JSON value, at most `webhookBodyLimitBytes` once serialized. */
const jsonBody = z.unknown().superRefine((value, ctx) => {
  if (value === undefined) {
    ctx.addIssue({ code: 'custom', message: 'is required' });
    return;
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  if (text === undefined) {
    ctx.addIssue({ code: 'custom', message: 'must be a JSON value' });
  } else if (Buffer.byteLength(text, 'utf8') > webhookBodyLimitBytes) {
    ctx.addIssue({
      code: 'custom',
      message: `makes a body of ${Buffer.byteLength(text, 'utf8')} bytes; a webhook body may have at most ${webhookBodyLimitBytes}`,
    });
  }
});

export const webhookSchema = z.object({
  url: webhookUrl,
  body: jsonBody,
  secret: webhookSecret,
});

export type WebhookInput = z.input<typeof webhookSchema>;

/**
 * The URL as shown (recipient, payload): without user info, query or fragment, since a query often carries the
 * receiver's token. The full URL is sealed with the secret when it has a query, and erased with it once final.
 */
export function webhookLabel(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * The signed webhook input (`sendWebhook` and its REST route): the URL (http or https, no credentials), the JSON body
 * and the `whsec_` secret. What the API shows: the URL without its query, and the body. Sealed at rest: the secret,
 * and the full URL when it has a query. Whether the destination is an address the gateway refuses (SSRF) is checked
 * by the channel (`SignedWebhookChannel.validate`) before anything is recorded, and again at each attempt.
 */
export function prepareWebhook(input: unknown): PreparedDelivery<WebhookMessage> {
  const parsed = parse(webhookSchema, input);
  const url = new URL(parsed.url);
  url.hash = '';
  if (!url.search) url.search = ''; // drops a bare trailing "?"
  const full = url.href;
  const shown = webhookLabel(url);
  // Round-trips through JSON, as the stored payload will (an undefined member dropped, -0 made 0, …).
  const body = JSON.parse(JSON.stringify(parsed.body)) as JsonValue;
  const message: WebhookMessage = { url: full, body, secret: parsed.secret };
  return {
    message,
    recipient: shown,
    payload: { url: shown, body },
    secrets: url.search ? { secret: parsed.secret, url: full } : { secret: parsed.secret },
  };
}
