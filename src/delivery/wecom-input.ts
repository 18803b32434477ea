import { z } from 'zod';
import { weComMsgTypes, type WeComMessage } from '../channels/channel';
import { weComContentLimitBytes } from '../channels/wecom-robot';
import { credentialLabel, mobileNumber, optionalList, parse, requiredText, type PreparedDelivery } from './input-rules';

/** A robot key is the UUID after `key=` in its webhook URL (8-4-4-4-12 hex digits). */
const keyShape = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The whole webhook URL pasted instead of its key: the key is taken from it (the host is WECOM_BASE_URL's). */
const webhookUrl = /^https?:\/\/[^/?#\s]+\/cgi-bin\/webhook\/send\?(?:[^#\s]*&)?key=([^&#\s]+)/i;

const robotKey = z
  .string()
  .max(512, 'must be at most 512 characters')
  .transform((value) => {
    const trimmed = value.trim();
    return webhookUrl.exec(trimmed)?.[1] ?? trimmed;
  })
  // Never quote the value back: it is the robot's only credential.
  .refine((value) => value.length > 0, 'must not be empty')
  .refine((value) => value.length === 0 || keyShape.test(value), 'must be the robot key: the UUID after key= in its webhook URL');

/** WeCom userids: 1–64 of letters, digits and `_ - @ .`, starting with a letter or digit; or `@all`. */
const userId = z
  .string()
  .refine(
    (value) => value === '@all' || /^[A-Za-z0-9][A-Za-z0-9_\-@.]{0,63}$/.test(value),
    'must be a WeCom userid (letters, digits, _ - @ .) or @all',
  );
/** `@all`, or a mobile number checked and normalised to E.164 as for SMS (WeCom gets mainland ones as 11 digits). */
const mobileOrAll = z.string().transform((value, ctx) => {
  if (value === '@all') return value;
  const result = mobileNumber.safeParse(value);
  if (result.success) return result.data;
  for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', message: issue.message });
  return z.NEVER;
});

export const weComSchema = z
  .object({
    key: robotKey,
    msgType: z
      .enum(weComMsgTypes)
      .nullish()
      .transform((value) => value ?? 'TEXT'),
    // The limit is in bytes (below); this only bounds the work before counting them.
    content: requiredText(65_536),
    mentionedList: optionalList(userId, 100),
    mentionedMobileList: optionalList(mobileOrAll, 100),
  })
  .superRefine((input, ctx) => {
    // WeCom counts bytes, not characters: 683 Chinese characters already make 2049 bytes of text.
    const limit = weComContentLimitBytes[input.msgType];
    const bytes = Buffer.byteLength(input.content, 'utf8');
    if (bytes > limit) {
      ctx.addIssue({
        code: 'custom',
        path: ['content'],
        message: `is ${bytes} bytes in UTF-8; WeCom accepts at most ${limit} for ${input.msgType}`,
      });
    }
    // WeCom markdown has no mention lists: they would silently vanish.
    if (input.msgType === 'MARKDOWN') {
      for (const field of ['mentionedList', 'mentionedMobileList'] as const) {
        if (input[field].length > 0) {
          const message = 'is only supported for TEXT (in MARKDOWN write <@userid> in the content)';
          ctx.addIssue({ code: 'custom', path: [field], message });
        }
      }
    }
  });

export type WeComInput = z.input<typeof weComSchema>;


/**
 * The WeCom group robot input (`sendWeCom` and its REST route): validated, sizes checked in UTF-8 bytes before
 * anything is recorded, and split into the message, a non-secret recipient label, the payload shown through the API,
 * and the key, sealed at rest.
 */
export function prepareWeCom(input: unknown): PreparedDelivery<WeComMessage> {
  const parsed = parse(weComSchema, input);
  const message: WeComMessage = {
    key: parsed.key,
    msgType: parsed.msgType,
    content: parsed.content,
    mentionedList: [...new Set(parsed.mentionedList)],
    mentionedMobileList: [...new Set(parsed.mentionedMobileList)],
  };
  const { key, ...visible } = message;
  return { message, recipient: credentialLabel('robot', key), payload: visible, secrets: { key } };
}
