import { z } from 'zod';
import { feishuMsgTypes, type FeishuMessage } from '../channels/channel';
import { feishuBodyBytes, feishuBodyLimitBytes } from '../channels/feishu-bot';
import { asciiToken, credentialLabel, nullish, parse, requiredLine, requiredText, type PreparedDelivery } from './input-rules';

export const feishuSchema = z
  .object({
    // The part of the webhook URL after /open-apis/bot/v2/hook/ (a UUID today): it goes into the URL path, so only
    // characters that need no escaping there.
    token: asciiToken(128).refine((value) => /^[A-Za-z0-9_-]+$/.test(value), 'must be the part of the webhook URL after /hook/'),
    secret: nullish(asciiToken(256)),
    content: requiredText(20_000),
    msgType: z
      .enum(feishuMsgTypes)
      .nullish()
      .transform((value) => value ?? 'TEXT'),
    title: nullish(requiredLine(256)),
    atAll: z
      .boolean()
      .nullish()
      .transform((value) => value ?? false),
  })
  .superRefine((input, ctx) => {
    if (input.msgType !== 'TEXT' && !input.title) {
      ctx.addIssue({ code: 'custom', path: ['title'], message: `is required for ${input.msgType}` });
    }
    const bytes = feishuBodyBytes(input);
    if (bytes > feishuBodyLimitBytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['content'],
        message: `makes a Feishu message of ${bytes} bytes; the gateway sends at most ${feishuBodyLimitBytes} (Feishu takes 20 KB)`,
      });
    }
  });

export type FeishuInput = z.input<typeof feishuSchema>;

/**
 * The Feishu/Lark bot input (`sendFeishu` and its REST route): validated, sizes checked before anything is recorded,
 * split into the message, a non-secret recipient label, the payload shown through the API, and the secrets sealed at
 * rest (`token`, `secret`).
 */
export function prepareFeishu(input: unknown): PreparedDelivery<FeishuMessage> {
  const message = parse(feishuSchema, input) as FeishuMessage;
  const { token, secret, ...visible } = message;
  return {
    message,
    recipient: credentialLabel('feishu', token),
    payload: visible,
    secrets: secret ? { token, secret } : { token },
  };
}
