import crypto from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ChannelError, type FeishuMessage } from '../../src/channels/channel';
import {
  classifyFeishuError,
  feishuBody,
  feishuBodyBytes,
  feishuBodyLimitBytes,
  feishuCodes,
  feishuPacing,
  FeishuBotChannel,
  signFeishu,
} from '../../src/channels/feishu-bot';
import { createLogger } from '../../src/logger';
import { closeServer, listenLocal } from '../peers/peer-server';
import { feishuEmulatorMaxBodyBytes, startFeishuEmulator, type FeishuEmulator } from '../peers/feishu-emulator';

// providers.md §6: computed with the documented algorithm (key = timestamp + "\n" + secret, message = "").
const vector = {
  timestamp: 1599360473,
  secret: 'demo',
  sign: 'l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8=',
  backwards: 'DkEDUyVoOOJ539qBvUgMyzkzIdRWlf4e/V3Rq+ONJnQ=',
};

const newBot = () => ({ token: crypto.randomUUID(), secret: crypto.randomBytes(16).toString('base64url') });
const context = (deliveryId = 'dlv_test') => ({ deliveryId, attempt: 1, signal: new AbortController().signal });
const text = (bot: { token: string; secret?: string }, content = 'hello'): FeishuMessage => ({
  ...bot,
  msgType: 'TEXT',
  content,
  atAll: false,
});

describe('Feishu 签名校验 against the vector', () => {
  it('computes the documented signature, and the backwards way (DingTalk’s) gives the other value', () => {
    expect(signFeishu(vector.timestamp, vector.secret)).toBe(vector.sign);
    expect(signFeishu(String(vector.timestamp), vector.secret)).toBe(vector.sign);
    const backwards = crypto.createHmac('sha256', vector.secret).update(`${vector.timestamp}\n${vector.secret}`).digest('base64');
    expect(backwards).toBe(vector.backwards);
    expect(backwards).not.toBe(vector.sign);
  });

  it('puts timestamp (seconds, a string) and sign in the body, and the emulator accepts them', async () => {
    const token = crypto.randomUUID();
    const emulator = await startFeishuEmulator({ bots: { [token]: vector.secret }, now: () => vector.timestamp * 1000 + 3000 });
    const channel = new FeishuBotChannel({ baseUrl: emulator.url, timeoutMs: 2000, now: () => vector.timestamp * 1000 + 999 });
    try {
      await expect(channel.send(text({ token, secret: vector.secret }), context())).resolves.toEqual({});
      expect(emulator.messages).toHaveLength(1);
      expect(emulator.messages[0]).toMatchObject({
        token,
        timestamp: '1599360473',
        sign: vector.sign,
        signatureVerified: true,
        contentType: 'application/json; charset=utf-8',
        body: { msg_type: 'text', content: { text: 'hello' } },
      });
    } finally {
      await channel.close();
      await emulator.close();
    }
  });

  it('sends no timestamp or sign without a secret', async () => {
    const token = crypto.randomUUID();
    const emulator = await startFeishuEmulator({ bots: { [token]: undefined } });
    const channel = new FeishuBotChannel({ baseUrl: emulator.url, timeoutMs: 2000 });
    try {
      await channel.send(text({ token }), context());
      expect(emulator.messages[0]).toMatchObject({ timestamp: undefined, sign: undefined, signatureVerified: false });
      expect(emulator.messages[0]!.body).toEqual({ msg_type: 'text', content: { text: 'hello' } });
    } finally {
      await channel.close();
      await emulator.close();
    }
  });
});

describe('Feishu bodies per msgType', () => {
  it('TEXT, with <at user_id="all"> for atAll', () => {
    expect(feishuBody({ msgType: 'TEXT', content: '磁盘告警', atAll: false })).toEqual({ msg_type: 'text', content: { text: '磁盘告警' } });
    expect(feishuBody({ msgType: 'TEXT', content: '磁盘告警', atAll: true })).toEqual({
      msg_type: 'text',
      content: { text: '磁盘告警 <at user_id="all">所有人</at>' },
    });
  });

  it('POST: rich text under post.zh_cn, one paragraph a line, @all as an at element', () => {
    expect(feishuBody({ msgType: 'POST', title: '发布', content: 'v1.2 已发布\n请检查', atAll: true })).toEqual({
      msg_type: 'post',
      content: {
        post: {
          zh_cn: {
            title: '发布',
            content: [
              [{ tag: 'text', text: 'v1.2 已发布' }],
              [
                { tag: 'text', text: '请检查' },
                { tag: 'at', user_id: 'all', user_name: '所有人' },
              ],
            ],
          },
        },
      },
    });
  });

  it('CARD: an interactive card with a header title and one markdown element', () => {
    expect(feishuBody({ msgType: 'CARD', title: '告警', content: '**CPU** 95%', atAll: false })).toEqual({
      msg_type: 'interactive',
      card: {
        header: { title: { tag: 'plain_text', content: '告警' } },
        elements: [{ tag: 'markdown', content: '**CPU** 95%' }],
      },
    });
  });

  it('counts the signature fields in the size, below the 20 KB Feishu takes', () => {
    const message = { msgType: 'TEXT' as const, content: 'x'.repeat(100), atAll: false };
    const unsigned = Buffer.byteLength(JSON.stringify(feishuBody(message)));
    expect(feishuBodyBytes(message)).toBe(unsigned);
    const signed = { ...message, secret: 's' };
    const real = { ...feishuBody(message), timestamp: String(Math.floor(Date.now() / 1000)), sign: signFeishu(1, 's') };
    expect(feishuBodyBytes(signed)).toBe(Buffer.byteLength(JSON.stringify(real)));
    expect(feishuBodyLimitBytes).toBeLessThan(feishuEmulatorMaxBodyBytes);
  });

  it('paces 5 in any 3.1 s per bot: at most 5 a second, and under 100 a minute with 2 s a minute to spare', () => {
    expect(feishuPacing).toEqual({ perWindow: 5, windowMs: 3100, muteMs: 60_000 });
    // The most attempt starts in a minute: 5 more every 3.1 s (each window is left 1 ms after it ends).
    expect(Math.ceil(60_000 / (feishuPacing.windowMs + 1)) * feishuPacing.perWindow).toBe(100);
    expect(20 * (feishuPacing.windowMs + 1) - 60_000).toBeGreaterThanOrEqual(2000);
  });
});

describe('the log', () => {
  it('redacts a Feishu token and secret logged by field name, as a message object would carry them', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false, destination: { write: (line: string) => lines.push(line) } });
    logger.info({ message: { token: 'tok-123456', secret: 'sec-654321', content: 'x' }, token: 'tok-123456' }, 'sending');
    expect(lines.join('')).not.toMatch(/tok-123456|sec-654321/);
    expect(JSON.parse(lines[0]!)).toMatchObject({ token: '[redacted]', message: { token: '[redacted]', secret: '[redacted]', content: 'x' } });
  });
});

describe('Feishu codes and transport failures', () => {
  let emulator: FeishuEmulator;
  let channel: FeishuBotChannel;
  const bot = newBot();
  const lines: string[] = [];

  beforeAll(async () => {
    emulator = await startFeishuEmulator({ bots: { [bot.token]: bot.secret } });
    const logger = createLogger({ level: 'debug', pretty: false, destination: { write: (line: string) => lines.push(line) } });
    channel = new FeishuBotChannel({ baseUrl: emulator.url, timeoutMs: 500, logger });
  });
  afterAll(async () => {
    await channel.close();
    await emulator.close();
  });
  beforeEach(() => emulator.reset());

  const failure = async (message = text(bot)) => {
    const error = await channel.send(message, context()).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(ChannelError);
    return error as ChannelError;
  };

  it('classifies every documented code', () => {
    expect(classifyFeishuError(11232)).toEqual({ kind: 'rate_limited', retryAfterMs: 60_000 });
    for (const code of [19021, 19022, 19024, 9499, 19001, 19002, 19036]) expect(classifyFeishuError(code)).toEqual({ kind: 'permanent' });
    expect(classifyFeishuError(12345)).toEqual({ kind: 'permanent' });
    expect(Object.keys(feishuCodes).map(Number).sort((a, b) => a - b)).toEqual([9499, 11232, 19001, 19002, 19021, 19022, 19024, 19036]);
  });

  it.each([
    [19021, 'sign match fail or timestamp is not within one hour from current time', 'permanent'],
    [19022, 'Ip Not Allowed', 'permanent'],
    [19024, 'Key Words Not Found', 'permanent'],
    [9499, 'Bad Request', 'permanent'],
    [19001, 'param invalid: incoming webhook access token invalid', 'permanent'],
    [11232, 'frequency limited psm[lark.oapi.app_platform_runtime]appID[1]', 'rate_limited'],
  ] as const)('code %i from the bot is %s… as %s, with Feishu’s msg', async (code, msg, kind) => {
    emulator.failNext({ code, msg });
    const error = await failure();
    expect(error).toMatchObject({ kind, code: String(code), message: msg });
    if (kind === 'rate_limited') expect(error.retryAfterMs).toBe(60_000);
  });

  it('a wrong secret is answered 19021 by the emulator’s own check; permanent', async () => {
    const error = await failure(text({ ...bot, secret: `${bot.secret}x` }));
    expect(error).toMatchObject({ kind: 'permanent', code: '19021' });
    expect(emulator.messages).toHaveLength(0);
    expect(lines.join('\n')).toMatch(/check the bot secret/);
  });

  it('a clock off by more than an hour is answered 19021 too', async () => {
    const skewed = new FeishuBotChannel({ baseUrl: emulator.url, timeoutMs: 500, now: () => Date.now() - 3_700_000 });
    try {
      const error = await skewed.send(text(bot), context()).catch((thrown: unknown) => thrown);
      expect(error).toMatchObject({ kind: 'permanent', code: '19021' });
    } finally {
      await skewed.close();
    }
  });

  it('an unknown token is 19001, permanent', async () => {
    expect(await failure(text({ token: crypto.randomUUID() }))).toMatchObject({ kind: 'permanent', code: '19001' });
  });

  it('9499 answered with HTTP 400 is permanent with code 9499, not HTTP_400', async () => {
    emulator.failNext({ status: 400, code: 9499, msg: 'Bad Request' });
    expect(await failure()).toMatchObject({ kind: 'permanent', code: '9499', message: 'Bad Request' });
  });

  it('11232 answered with HTTP 429 is still rate limited, resting the bot a minute', async () => {
    emulator.failNext({ status: 429, code: 11232 });
    expect(await failure()).toMatchObject({ kind: 'rate_limited', code: '11232', retryAfterMs: 60_000 });
  });

  it('the older StatusCode/StatusMessage answers are read too', async () => {
    const answers = ['{"Extra":null,"StatusCode":0,"StatusMessage":"success"}', '{"StatusCode":19024,"StatusMessage":"Key Words Not Found"}'];
    const server = http.createServer((_request, response) => response.end(answers.shift()));
    const { url } = await listenLocal(server);
    const older = new FeishuBotChannel({ baseUrl: url, timeoutMs: 500 });
    try {
      await expect(older.send(text(bot), context())).resolves.toEqual({});
      expect(await older.send(text(bot), context()).catch((thrown: unknown) => thrown)).toMatchObject({
        kind: 'permanent',
        code: '19024',
        message: 'Key Words Not Found',
      });
    } finally {
      await older.close();
      await closeServer(server);
    }
  });

  it('a 2xx without a code is retryable (garbled), HTTP_200', async () => {
    const server = http.createServer((_request, response) => response.end('<html>ok</html>'));
    const { url } = await listenLocal(server);
    const garbled = new FeishuBotChannel({ baseUrl: url, timeoutMs: 500 });
    try {
      expect(await garbled.send(text(bot), context()).catch((thrown: unknown) => thrown)).toMatchObject({ kind: 'retryable', code: 'HTTP_200' });
    } finally {
      await garbled.close();
      await closeServer(server);
    }
  });

  it.each([429, 500, 502, 503])('HTTP %i without Feishu’s answer is retryable', async (status) => {
    emulator.failNext({ status });
    expect(await failure()).toMatchObject({ kind: 'retryable', code: `HTTP_${status}` });
  });

  it('a 404 (wrong base URL) is permanent', async () => {
    const wrong = new FeishuBotChannel({ baseUrl: `${emulator.url}/nowhere`, timeoutMs: 500 });
    try {
      expect(await wrong.send(text(bot), context()).catch((thrown: unknown) => thrown)).toMatchObject({ kind: 'permanent', code: 'HTTP_404' });
    } finally {
      await wrong.close();
    }
  });

  it('no answer in time and a refused connection are retryable transport failures', async () => {
    emulator.failNext({ hang: true });
    expect(await failure()).toMatchObject({ kind: 'retryable', code: 'ETIMEDOUT' });
    const closed = new FeishuBotChannel({ baseUrl: 'http://127.0.0.1:9', timeoutMs: 500 });
    try {
      expect(await closed.send(text(bot), context()).catch((thrown: unknown) => thrown)).toMatchObject({ kind: 'retryable', code: 'ECONNREFUSED' });
    } finally {
      await closed.close();
    }
  });

  it('never puts the token or secret in an error message, even when Feishu echoes them', async () => {
    emulator.failNext({ code: 19001, msg: `token ${bot.token} secret ${bot.secret} ${encodeURIComponent(bot.token)}` });
    const error = await failure();
    expect(error.message).not.toContain(bot.token);
    expect(error.message).not.toContain(bot.secret);
    expect(error.message).toContain('[redacted]');
    expect(lines.join('\n')).not.toContain(bot.token);
    expect(lines.join('\n')).not.toContain(bot.secret);
  });
});
