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
