import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { z } from 'zod';
import { dingMsgTypes, type DingMessage, type EmailMessage, type SmsMessage } from '../channels/channel';
import { dingTalkBody, dingTalkBodyLimitBytes } from '../channels/ding-talk-robot';
import type { ChannelName } from '../db/schema';
import {
  asciiToken,
  credentialLabel,
  emailAddress,
  httpUrl,
  mobileNumber,
  nullish,
  optionalList,
  parse,
  requiredLine,
  requiredText,
  singleLine,
  text,
  type PreparedDelivery,
} from './input-rules';
import { feishuSchema, prepareFeishu } from './feishu-input';
import { prepareWeCom, weComSchema } from './wecom-input';
import { prepareWebhook, webhookSchema } from './webhook-input';

export { idempotencyKey, type PreparedDelivery } from './input-rules';

const dingSchema = z
  .object({
    accessToken: asciiToken(256),
    secret: asciiToken(256),
    content: requiredText(20_000),
    msgType: z
      .enum(dingMsgTypes)
      .nullish()
      .transform((value) => value ?? 'TEXT'),
    title: nullish(requiredLine(256)),
    messageUrl: nullish(httpUrl),
    picUrl: nullish(httpUrl),
    atMobiles: optionalList(
      requiredLine(32).refine((value) => /^[0-9+\- ]+$/.test(value), 'must be a mobile number'),
      100,
    ),
    atUserIds: optionalList(asciiToken(64), 100),
    atAll: z
      .boolean()
      .nullish()
      .transform((value) => value ?? false),
  })
  .superRefine((input, ctx) => {
    if (input.msgType !== 'TEXT' && !input.title) {
      ctx.addIssue({ code: 'custom', path: ['title'], message: `is required for ${input.msgType}` });
    }
    if ((input.msgType === 'LINK' || input.msgType === 'ACTION_CARD') && !input.messageUrl) {
      ctx.addIssue({ code: 'custom', path: ['messageUrl'], message: `is required for ${input.msgType}` });
    }
    // DingTalk only @mentions in text and markdown; elsewhere the mention would silently vanish.
    if (input.msgType === 'LINK' || input.msgType === 'ACTION_CARD') {
      for (const field of ['atMobiles', 'atUserIds'] as const) {
        if (input[field].length > 0) {
          ctx.addIssue({ code: 'custom', path: [field], message: 'is only supported for TEXT and MARKDOWN' });
        }
      }
      if (input.atAll) ctx.addIssue({ code: 'custom', path: ['atAll'], message: 'is only supported for TEXT and MARKDOWN' });
    }
    const bytes = Buffer.byteLength(JSON.stringify(dingTalkBody(input as DingMessage)), 'utf8');
    if (bytes > dingTalkBodyLimitBytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['content'],
        message: `makes a DingTalk message of ${bytes} bytes; DingTalk accepts at most ${dingTalkBodyLimitBytes}`,
      });
    }
  });

const emailSchema = z.object({
  to: z.array(emailAddress).min(1, 'must list at least one address').max(50, 'must list at most 50 addresses'),
  cc: optionalList(emailAddress, 50),
  bcc: optionalList(emailAddress, 50),
  subject: nullish(singleLine(998)),
  // Both together stay under the default 1 MiB request body limit.
  content: requiredText(256_000),
  html: nullish(text(512_000)),
});

const templateParamName = /^[A-Za-z0-9][A-Za-z0-9_]{0,63}$/;

/** Checked before z.record, which would silently drop a "__proto__" key and quote any hostile key in its path. */
const templateParams = z
  .custom<Record<string, unknown>>(
    (value) => typeof value === 'object' && value !== null && !Array.isArray(value),
    'must be an object of template parameters',
  )
  .superRefine((value, ctx) => {
    if (typeof value !== 'object' || value === null) return;
    const names = Object.keys(value);
    if (names.length > 20) ctx.addIssue({ code: 'custom', message: 'must have at most 20 entries' });
    else if (!names.every((name) => templateParamName.test(name))) {
      ctx.addIssue({ code: 'custom', message: 'names must be letters, digits and _ (at most 64)' });
    }
  })
  .pipe(
    z.record(
      z.string(),
      z.union([singleLine(500), z.number().finite()], { error: 'must be a string or a number' }).transform(String),
    ),
  );

const smsSchema = z.object({
  mobile: mobileNumber,
  content: requiredLine(500),
  template: nullish(asciiToken(64)),
  params: templateParams.nullish().transform((value) => value ?? undefined),
});

export type DingInput = z.input<typeof dingSchema>;
export type EmailInput = z.input<typeof emailSchema>;
export type SmsInput = z.input<typeof smsSchema>;

export function prepareDing(input: unknown): PreparedDelivery<DingMessage> {
  const message = parse(dingSchema, input) as DingMessage;
  const { accessToken, secret, ...visible } = message;
  return { message, recipient: credentialLabel('robot', accessToken), payload: visible, secrets: { accessToken, secret } };
}

export function prepareEmail(input: unknown): PreparedDelivery<EmailMessage> {
  const parsed = parse(emailSchema, input);
  const message: EmailMessage = {
    to: parsed.to,
    cc: parsed.cc,
    bcc: parsed.bcc,
    subject: parsed.subject ?? '',
    text: parsed.content,
    html: parsed.html,
  };
  return { message, recipient: parsed.to.join(', ').toLowerCase(), payload: { ...message }, secrets: null };
}

export function prepareSms(input: unknown): PreparedDelivery<SmsMessage> {
  const message = parse(smsSchema, input) as SmsMessage;
  // The content is usually a verification code: it is a secret, the rest is not.
  return {
    message,
    recipient: message.mobile,
    payload: { mobile: message.mobile, template: message.template },
    secrets: { content: message.content, params: message.params },
  };
}

export const prepareByChannel = {
  DING: prepareDing,
  EMAIL: prepareEmail,
  SMS: prepareSms,
  FEISHU: prepareFeishu,
  WECOM: prepareWeCom,
  WEBHOOK: prepareWebhook,
} satisfies Record<ChannelName, (input: unknown) => PreparedDelivery<unknown>>;

/** The schema each channel's input is checked against: the legacy REST description takes its limits from it. */
export const inputSchemaByChannel = {
  DING: dingSchema,
  EMAIL: emailSchema,
  SMS: smsSchema,
  FEISHU: feishuSchema,
  WECOM: weComSchema,
  WEBHOOK: webhookSchema,
} satisfies Record<ChannelName, z.ZodType>;

/** Rebuilds the provider message from what was stored. */
export function messageFromStored(payload: Record<string, unknown>, secrets: Record<string, unknown> | null): unknown {
  return { ...payload, ...(secrets ?? {}) };
}

/** Lets a `recipient` filter be written the way a caller would send it: a bare mainland mobile, mixed-case email. */
export function normaliseRecipientFilter(recipient: string): string {
  if (/^[0-9+\- ()]+$/.test(recipient)) {
    const phone = parsePhoneNumberFromString(recipient.trim(), 'CN');
    return phone?.isValid() ? phone.number : recipient;
  }
  if (recipient.includes('@')) {
    return recipient
      .split(/[,;]/)
      .map((address) => address.trim().toLowerCase())
      .filter(Boolean)
      .join(', ');
  }
  return recipient;
}
