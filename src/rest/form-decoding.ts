/** A parameter that cannot be read as sent; `parameter` is the name the caller used (or where it was). */
export class MalformedParameterError extends Error {
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(message);
    this.name = 'MalformedParameterError';
  }
}

const plus = 0x2b;
const percent = 0x25;
const ampersand = 0x26;
const equals = 0x3d;

function hexValue(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/**
 * One name or value of `application/x-www-form-urlencoded` (servlet rules): `+` is a space, `%XX` a byte, the bytes
 * are text in `charset`. Unlike URLSearchParams, which keeps `%ZZ` and turns broken UTF-8 into U+FFFD, anything
 * that does not decode is refused, so a caller never gets a silently altered message.
 */
function decodeComponent(bytes: Uint8Array, decoder: TextDecoder, parameter: string, place: string): string {
  const out = new Uint8Array(bytes.length);
  let length = 0;
  for (let index = 0; index < bytes.length; index++) {
    const byte = bytes[index]!;
    if (byte === plus) {
      out[length++] = 0x20;
    } else if (byte === percent) {
      const high = hexValue(bytes[index + 1]);
      const low = hexValue(bytes[index + 2]);
      if (high < 0 || low < 0) {
        const sequence = Buffer.from(bytes.subarray(index, index + 3)).toString('latin1');
        throw new MalformedParameterError(parameter, `malformed percent-encoding "${sequence}" ${place}; a literal % is sent as %25`);
      }
      out[length++] = high * 16 + low;
      index += 2;
    } else {
      out[length++] = byte;
    }
  }
  try {
    return decoder.decode(out.subarray(0, length));
  } catch {
    throw new MalformedParameterError(parameter, `is not valid ${decoder.encoding.toUpperCase()} once percent-decoded (${place})`);
  }
}

function split(bytes: Uint8Array, separator: number): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let start = 0;
  for (let index = 0; index <= bytes.length; index++) {
    if (index === bytes.length || bytes[index] === separator) {
      parts.push(bytes.subarray(start, index));
      start = index + 1;
    }
  }
  return parts;
}

/** `+` and `%XX` of one component given as text in UTF-8; the byte path says what is wrong when it does not decode. */
function decodeTextComponent(text: string, parameter: string, place: string): string {
  const spaced = text.includes('+') ? text.replaceAll('+', ' ') : text;
  if (!spaced.includes('%')) return spaced;
  try {
    // As strict as the byte path: malformed %XX and bytes that are not UTF-8 throw.
    return decodeURIComponent(spaced);
  } catch {
    return decodeComponent(Buffer.from(text, 'utf8'), new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }), parameter, place);
  }
}

const loneSurrogate = /[\uD800-\uDFFF]/;

/**
 * Decodes a query string or form body into name/value pairs, in order. Throws MalformedParameterError (naming the
 * parameter when its name could be read) for `%` not followed by two hex digits or bytes that are not `charset`.
 */
export function decodeForm(input: string | Uint8Array, where: string, charset = 'utf-8'): [string, string][] {
  const pairs: [string, string][] = [];
  // Text in UTF-8 (every query string) is decoded as text, without copying it to bytes and back.
  if (typeof input === 'string' && charset === 'utf-8' && !loneSurrogate.test(input)) {
    for (const part of input.split('&')) {
      if (part.length === 0) continue;
      const separator = part.indexOf('=');
      const name = decodeTextComponent(separator < 0 ? part : part.slice(0, separator), where, 'in a parameter name');
      pairs.push([name, decodeTextComponent(separator < 0 ? '' : part.slice(separator + 1), name, `in the ${where}`)]);
    }
    return pairs;
  }
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  const decoder = new TextDecoder(charset, { fatal: true, ignoreBOM: true });
  for (const part of split(bytes, ampersand)) {
    if (part.length === 0) continue;
    const separator = part.indexOf(equals);
    const rawName = separator < 0 ? part : part.subarray(0, separator);
    const rawValue = separator < 0 ? new Uint8Array(0) : part.subarray(separator + 1);
    const name = decodeComponent(rawName, decoder, where, 'in a parameter name');
    const value = decodeComponent(rawValue, decoder, name, `in the ${where}`);
    pairs.push([name, value]);
  }
  return pairs;
}
