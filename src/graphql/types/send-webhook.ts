import { builder } from '../builder';
import { sendMutation } from './send-mutation';

const SendWebhookInput = builder.inputType('SendWebhookInput', {
  description:
    'A JSON body POSTed to a URL, signed per the Standard Webhooks specification (webhook-id, webhook-timestamp, ' +
    'webhook-signature). Loopback, private, link-local and metadata addresses are refused unless the host is in ' +
    'WEBHOOK_ALLOWED_HOSTS',
  fields: (t) => ({
    url: t.string({
      required: true,
      description: 'http(s) URL of the receiver, without user:password@; shown without its query string, which is sealed',
    }),
    body: t.field({ type: 'JSON', required: true, description: 'Any JSON value, sent as is (at most 256 KiB serialized)' }),
    secret: t.string({ required: true, description: 'The signing secret, whsec_ + Base64 of 24 to 64 bytes; never shown again' }),
    idempotencyKey: t.string({ description: 'Same key and payload return the original delivery' }),
    wait: t.boolean({ description: 'Wait for the first attempt (default true)' }),
  }),
});

sendMutation('sendWebhook', 'WEBHOOK', SendWebhookInput);
