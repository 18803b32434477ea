// The field rules, the parse step and the prepared shape every channel's input schema uses (delivery/inputs.ts and
// the per-channel *-input.ts files).
// The full metadata tells mobiles from landlines; the default build only checks lengths.
import crypto from 'node:crypto';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { z } from 'zod';
import { ValidationError } from '../errors';

// Control characters other than tab, newline and carriage return never belong in a message.
export const controlCharacters = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/;
export const lineBreaks = /[\r\n]/;

export const text = (max: number) =>
  z
    .string()
    .max(max, `must be at most ${max} characters`)
    .refine((value) => !controlCharacters.test(value), 'must not contain control characters');
export const requiredText = (max: number) => text(max).refine((value) => value.trim().length > 0, 'must not be empty');
export const singleLine = (max: number) => text(max).refine((value) => !lineBreaks.test(value), 'must be a single line');
export const requiredLine = (max: number) =>
  singleLine(max).refine((value) => value.trim().length > 0, 'must not be empty');
// Credentials and identifiers: printable ASCII, no spaces.
export const asciiToken = (max: number) =>
  requiredLine(max).refine((value) => /^[\x21-\x7E]+$/.test(value), 'must be printable ASCII without spaces');
export const httpUrl = singleLine(2048).refine((value) => {
  try {
    return ['http:', 'https:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}, 'must be an http(s) URL');
export const emailAddress = z
  .string()
  .max(254, 'must be at most 254 characters')
  .refine((value) => !lineBreaks.test(value) && !controlCharacters.test(value), 'must not contain line breaks')
  .pipe(z.email('must be an email address'));
export const mobileNumber = z
  .string()
  .max(32, 'must be at most 32 characters')
  .transform((value, ctx) => {
    const phone = /^[0-9+\- ()]+$/.test(value) ? parsePhoneNumberFromString(value.trim(), 'CN') : undefined;
    const type = phone?.isValid() ? phone.getType() : undefined;
    if (!phone || (type !== 'MOBILE' && type !== 'FIXED_LINE_OR_MOBILE')) {
      ctx.addIssue({ code: 'custom', message: 'must be a valid mobile number (E.164, or 11 digits for mainland China)' });
      return z.NEVER;
    }
    return phone.number;
  });
export const idempotencyKey = requiredLine(255).optional();
export const optionalList = <T extends z.ZodType>(item: T, max: number) =>
  z
    .array(item)
    .max(max, `must list at most ${max}`)
    .nullish()
    .transform((value) => value ?? []);
export const nullish = <T extends z.ZodType>(schema: T) => schema.nullish().transform((value) => value ?? undefined);


export interface PreparedDelivery<M> {
  message: M;
  recipient: string;
  /** Shown through the API and kept in the clear. */
  payload: Record<string, unknown>;
  /** Sealed at rest and erased once the delivery is final. */
  secrets: Record<string, unknown> | null;
}

export function parse<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new ValidationError(
    result.error.issues.map((issue) => ({
      path: issue.path.length > 0 ? issue.path.join('.') : 'input',
      message: issue.message,
    })),
  );
}


/**
 * A non-secret label of a robot's credential (a DingTalk access token, a WeCom key, a Feishu token): the recipient the
 * API shows and filters by, useless for sending.
 */
export function credentialLabel(prefix: 'robot' | 'feishu', credential: string): string {
  return `${prefix}:${crypto.createHash('sha256').update(credential).digest('hex').slice(0, 12)}`;
}
