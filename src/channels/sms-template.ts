import { RequestError } from 'got';
import { ChannelError, type SmsMessage } from './channel';

/**
 * Named template values: `content` fills the parameter called `paramName`, `params` add to it and win on the same name.
 * Both vendors want strings.
 */
export function templateValues(message: Pick<SmsMessage, 'content' | 'params'>, paramName: string): Record<string, string> {
  const values: Record<string, string> = { [paramName]: message.content };
  for (const [name, value] of Object.entries(message.params ?? {})) values[name] = String(value);
  return values;
}

const position = /^[1-9][0-9]*$/;

/**
 * Tencent templates are positional ({1}, {2}…). Two ways to fill them:
 * - params keyed "1", "2"…: each value goes to its placeholder, and `content` fills position `paramName` when that is
 *   a number, else {1} (unless a param takes that place). Exact, but needs GraphQL variables (a GraphQL literal
 *   cannot write a key such as "1").
 * - params keyed by name, as for Aliyun: `content` (under `paramName`) comes first, then the params in the order
 *   given, so one request can serve both providers.
 * Numbered and named params together are refused: JavaScript moves integer-like keys first, so their order is lost.
 */
export function positionalTemplateValues(message: Pick<SmsMessage, 'content' | 'params'>, paramName: string): string[] {
  const keys = Object.keys(message.params ?? {});
  const numbered = keys.filter((key) => position.test(key));
  if (numbered.length > 0 && numbered.length < keys.length) {
    throw new ChannelError(
      'permanent',
      'INVALID_TEMPLATE_PARAMS',
      `Tencent template parameters are either all numbered ("1", "2", …) or all named, not both (got ${keys.map((key) => JSON.stringify(key)).join(', ')})`,
    );
  }
  if (keys.length > 0 && numbered.length === 0) return Object.values(templateValues(message, paramName));
  const values = templateValues(message, position.test(paramName) ? paramName : '1');
  const count = Math.max(...Object.keys(values).map(Number));
  const list: string[] = [];
  for (let index = 1; index <= count; index += 1) {
    const value = values[String(index)];
    if (value === undefined) {
      throw new ChannelError(
        'permanent',
        'INVALID_TEMPLATE_PARAMS',
        `Tencent template parameters must be numbered 1…${count} without gaps: "${index}" is missing`,
      );
    }
    list.push(value);
  }
  return list;
}

/**
 * Removes from a provider's message every template value (the verification code among them), raw or percent-encoded
 * once or twice: Aliyun echoes its whole string-to-sign, template parameters included, in SignatureDoesNotMatch.
 */
export function redact(text: string, secrets: string[]): string {
  let result = text.replace(/\s*server string to sign is:.*$/s, '');
  for (const secret of secrets) {
    if (!secret) continue;
    const once = encodeURIComponent(secret);
    for (const form of new Set([secret, JSON.stringify(secret).slice(1, -1), once, encodeURIComponent(once)])) {
      result = result.split(form).join('***');
    }
  }
  return result;
}

/** A request that never got an answer: timeouts, refused or reset connections, DNS. Always worth another attempt. */
export function transportFailure(error: unknown, provider: string): ChannelError {
  const code =
    error instanceof RequestError
      ? (error.code ?? 'ECONNECTION')
      : error instanceof Error && error.name === 'AbortError'
        ? 'ABORTED'
        : 'ECONNECTION';
  // The message never carries the URL or the request: both can hold the code.
  return new ChannelError('retryable', code, `${provider} unreachable: ${code}`);
}

/** A body that is not the vendor's JSON: a proxy's or load balancer's page. 5xx and 429 are worth another attempt. */
export function unexpectedAnswer(provider: string, statusCode: number): ChannelError {
  const kind = statusCode >= 500 || statusCode === 429 ? 'retryable' : 'permanent';
  return new ChannelError(kind, `HTTP_${statusCode}`, `${provider} answered HTTP ${statusCode} without its JSON body`);
}

/**
 * Makes the request and reads the vendor's JSON answer: no answer becomes `transportFailure`, an answer that is not
 * JSON `unexpectedAnswer`.
 */
export async function requestJson<T>(
  provider: string,
  request: () => Promise<{ statusCode: number; body: string }>,
): Promise<{ statusCode: number; answer: T }> {
  let response;
  try {
    response = await request();
  } catch (error) {
    throw transportFailure(error, provider);
  }
  try {
    return { statusCode: response.statusCode, answer: JSON.parse(response.body) as T };
  } catch {
    throw unexpectedAnswer(provider, response.statusCode);
  }
}
