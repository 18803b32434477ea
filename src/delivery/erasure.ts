import crypto from 'node:crypto';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import type { ErasureRequest } from '../db/store';
import { ValidationError } from '../errors';
import { emailAddress, mobileNumber } from './input-rules';

/**
 * What erasing `recipient` looks for, normalised as a send normalises it (an email address in lower case, a mobile in
 * E.164), with a fresh random marker to write in its place: nothing in the marker leads back to the address.
 * ValidationError on `recipient` when it is neither.
 */
export function erasureRequest(recipient: string, now: number): ErasureRequest {
  const marker = `erased:${crypto.randomBytes(8).toString('hex')}`;
  const value = recipient.trim();
  if (value.includes('@')) {
    const parsed = emailAddress.safeParse(value);
    if (!parsed.success) throw new ValidationError([{ path: 'recipient', message: 'must be one email address or one mobile number' }]);
    const address = parsed.data.toLowerCase();
    return { address, spellings: [address], marker, now };
  }
  const parsed = mobileNumber.safeParse(value);
  if (!parsed.success) throw new ValidationError([{ path: 'recipient', message: 'must be one email address or one mobile number' }]);
  // Providers' replies may write the number without its country code.
  const national = parsePhoneNumberFromString(parsed.data)?.nationalNumber;
  return { address: parsed.data, spellings: national ? [parsed.data, national] : [parsed.data], marker, now };
}
