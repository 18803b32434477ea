import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ChannelError, type WeComMessage } from '../../src/channels/channel';
import { weComBody, WeComRobotChannel } from '../../src/channels/wecom-robot';
import { ConfigError, loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { startWeComEmulator, type WeComEmulator } from '../peers/wecom-emulator';

const context = (deliveryId = 'dlv_test') => ({ deliveryId, attempt: 1, signal: new AbortController().signal });
const textMessage = (key: string, content = 'hello', mentions: Partial<WeComMessage> = {}): WeComMessage => ({
  key,
  msgType: 'TEXT',
  content,
  mentionedList: [],
  mentionedMobileList: [],
  ...mentions,
});

describe('WeCom bodies', () => {
  it('text carries the mention lists, mainland mobiles as their 11 digits; empty lists are left out', () => {
    expect(
      weComBody(textMessage('k', '磁盘告警', { mentionedList: ['zhangsan', '@all'], mentionedMobileList: ['+8613800138000', '+85261234567', '@all'] })),
    ).toEqual({
      msgtype: 'text',
      text: { content: '磁盘告警', mentioned_list: ['zhangsan', '@all'], mentioned_mobile_list: ['13800138000', '+85261234567', '@all'] },
    });
    expect(weComBody(textMessage('k', 'x'))).toEqual({ msgtype: 'text', text: { content: 'x' } });
  });

  it('markdown is its content alone', () => {
    expect(weComBody({ ...textMessage('k', '## 发布\n<@zhangsan>'), msgType: 'MARKDOWN' })).toEqual({
      msgtype: 'markdown',
      markdown: { content: '## 发布\n<@zhangsan>' },
    });
  });
});

describe('WeCom errcodes and transport failures', () => {
  let emulator: WeComEmulator;
  let channel: WeComRobotChannel;
  const key = crypto.randomUUID();
  const logLines: string[] = [];

  beforeAll(async () => {
    emulator = await startWeComEmulator({ keys: [key] });
    const logger = createLogger({ level: 'trace', pretty: false, destination: { write: (line: string) => logLines.push(line) } });
    channel = new WeComRobotChannel({ baseUrl: emulator.url, timeoutMs: 1000, logger });
  });
  afterAll(async () => {
    await channel.close();
    await emulator.close();
    expect(logLines.join('')).not.toContain(key);
  });
  beforeEach(() => emulator.reset());

  const failure = async (message = textMessage(key)) => {
    const error = await channel.send(message, context()).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(ChannelError);
    const { kind, code, message: text, retryAfterMs } = error as ChannelError;
    expect(text).not.toContain(message.key);
    expect(JSON.stringify(error)).not.toContain(message.key);
    return { kind, code, message: text, retryAfterMs };
  };

  it('sends to /cgi-bin/webhook/send?key=… as JSON and resolves on errcode 0', async () => {
    await expect(channel.send(textMessage(key, '告警', { mentionedMobileList: ['+8613800138000'] }), context())).resolves.toEqual({});
    expect(emulator.messages).toHaveLength(1);
    expect(emulator.messages[0]).toMatchObject({
      key,
      contentType: 'application/json; charset=utf-8',
      body: { msgtype: 'text', text: { content: '告警', mentioned_mobile_list: ['13800138000'] } },
    });
  });

  // Every errcode in the WeCom robot documentation, with the class the gateway must give it; written out, not imported.
  const documented: [number, string, 'retryable' | 'rate_limited' | 'permanent'][] = [
    [-1, 'system busy', 'retryable'],
    [45009, 'api freq out of limit', 'rate_limited'],
    [93000, 'invalid webhook url', 'permanent'],
    [40008, 'invalid message type', 'permanent'],
    [44004, 'empty content', 'permanent'],
    [40058, 'invalid Request Parameter', 'permanent'],
    [999999, 'a code WeCom never documented', 'permanent'],
  ];

  it.each(documented)('errcode %i (%s) is %s, keeping errcode and errmsg', async (errcode, words, kind) => {
    emulator.failNext({ errcode, errmsg: words });
    const error = await failure();
    expect(error).toMatchObject({ kind, code: String(errcode) });
    // The emulator answers with WeCom's tail (hint, from ip, more info): kept, it helps WeCom's support.
    expect(error.message).toMatch(new RegExp(`^${words}, hint: \\[.*more info at .*e=${errcode}$`));
    // Over 20 a minute WeCom refuses until the minute has passed: the retry must not come sooner.
    expect(error.retryAfterMs).toBe(kind === 'rate_limited' ? 60_000 : undefined);
  });

  it('judges by errcode, not by HTTP 200: an unknown key is refused by the emulator with 93000, permanent', async () => {
    const wrong = crypto.randomUUID();
    const error = await failure(textMessage(wrong));
    expect(error).toMatchObject({ kind: 'permanent', code: '93000', retryAfterMs: undefined });
    expect(error.message).toMatch(/^invalid webhook url, hint: /);
    expect(emulator.requests[0]).toMatchObject({ status: 200, errcode: 93000, key: wrong });
  });

  it('real refusals for sizes and content are permanent: 40058 over 2048 bytes, 44004 empty', async () => {
    expect(await failure(textMessage(key, '告'.repeat(683)))).toMatchObject({ kind: 'permanent', code: '40058' });
    expect(await failure(textMessage(key, ''))).toMatchObject({ kind: 'permanent', code: '44004' });
  });

  it.each([
    [500, 'retryable'],
    [502, 'retryable'],
    [503, 'retryable'],
    [429, 'retryable'],
    [408, 'retryable'],
    [404, 'permanent'],
  ] as const)('HTTP %i without an errcode is %s', async (status, kind) => {
    emulator.failNext({ status });
    expect(await failure()).toMatchObject({
      kind,
      code: `HTTP_${status}`,
      message: `WeCom answered HTTP ${status}${kind === 'permanent' ? ' without an errcode' : ''}`,
    });
  });

  it('a timeout is retryable and names no URL', async () => {
    emulator.failNext({ hang: true });
    expect(await failure()).toEqual({ kind: 'retryable', code: 'ETIMEDOUT', message: 'WeCom did not answer within 1000 ms', retryAfterMs: undefined });
  });

  it('a refused connection is retryable and names no URL', async () => {
    const closed = await startWeComEmulator();
    const { url } = closed;
    await closed.close();
    const unreachable = new WeComRobotChannel({ baseUrl: url, timeoutMs: 300 });
    try {
      const error = (await unreachable.send(textMessage(key), context()).catch((thrown: unknown) => thrown)) as ChannelError;
      expect(error).toBeInstanceOf(ChannelError);
      expect(error).toMatchObject({ kind: 'retryable', code: 'ECONNREFUSED', message: 'WeCom could not be reached (ECONNREFUSED)' });
      expect(error.message).not.toContain(url);
      expect(JSON.stringify(error)).not.toContain(key);
    } finally {
      await unreachable.close();
    }
  });

  it('never repeats the key even if WeCom echoes it, raw or percent-encoded', async () => {
    emulator.failNext({ errcode: 93000, errmsg: `invalid webhook url key=${key} (${encodeURIComponent(key)})` });
    expect((await failure()).message).toMatch(/^invalid webhook url key=\[redacted\] \(\[redacted\]\), hint: /);
  });

  it('a 200 that is not WeCom JSON is retryable; another status without errcode is permanent', async () => {
    const garbled = await startGarbled();
    const through = new WeComRobotChannel({ baseUrl: garbled.url, timeoutMs: 1000 });
    try {
      garbled.answer = [200, '<html>gateway</html>'];
      expect(await through.send(textMessage(key), context()).catch((error) => error)).toMatchObject({ kind: 'retryable', code: 'HTTP_200' });
      garbled.answer = [403, '{"message":"forbidden"}'];
      expect(await through.send(textMessage(key), context()).catch((error) => error)).toMatchObject({ kind: 'permanent', code: 'HTTP_403' });
    } finally {
      await through.close();
      await garbled.close();
    }
  });

  it('reuses one kept-alive connection for consecutive sends', async () => {
    for (let i = 0; i < 3; i++) await channel.send(textMessage(key), context());
    expect(emulator.messages).toHaveLength(3);
    expect(new Set(emulator.requests.map((request) => request.remotePort)).size).toBe(1);
  });

  it('paces each robot: 19 a minute by default, or the configured number', () => {
    expect(channel.pacing).toEqual({ perWindow: 19, windowMs: 60_000, muteMs: 60_000 });
    expect(new WeComRobotChannel({ baseUrl: emulator.url, timeoutMs: 1000, perMinute: 5 }).pacing.perWindow).toBe(5);
  });
});

async function startGarbled() {
  const http = await import('node:http');
  const { listenLocal, closeServer } = await import('../peers/peer-server');
  const state = { answer: [200, ''] as [number, string] };
  const server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(state.answer[0], { 'content-type': 'text/html' });
      response.end(state.answer[1]);
    });
  });
  const { url } = await listenLocal(server);
  return {
    url,
    set answer(value: [number, string]) {
      state.answer = value;
    },
    close: () => closeServer(server),
  };
}

describe('WECOM_ROBOT_PER_MINUTE', () => {
  it('is 19 by default, read when set, and refused above WeCom\'s 20 or below 1', () => {
    expect(loadConfig({}).wecom).toEqual({ baseUrl: 'https://qyapi.weixin.qq.com', perRobotPerMinute: 19 });
    expect(loadConfig({ WECOM_ROBOT_PER_MINUTE: '5' }).wecom.perRobotPerMinute).toBe(5);
    for (const value of ['21', '0', 'many']) {
      expect(() => loadConfig({ WECOM_ROBOT_PER_MINUTE: value })).toThrow(ConfigError);
    }
  });
});

describe('the logger', () => {
  it('censors a field named key, as it does accessToken and secret', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false, destination: { write: (line: string) => lines.push(line) } });
    const key = crypto.randomUUID();
    logger.info({ key, message: { key, content: 'x' } }, 'oops');
    expect(lines.join('')).not.toContain(key);
    expect(JSON.parse(lines[0])).toMatchObject({ key: '[redacted]', message: { key: '[redacted]', content: 'x' } });
  });
});
