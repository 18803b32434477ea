import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startDingTalkEmulator, type DingTalkEmulator } from '../peers/ding-talk-emulator';

// The emulator is only as good as its refusals: each check here is one the gateway could get wrong.

const token = crypto.randomBytes(32).toString('hex');
const secret = `SEC${crypto.randomBytes(32).toString('hex')}`;
const sign = (timestamp: number | string, key = secret) =>
  crypto.createHmac('sha256', key).update(`${timestamp}\n${key}`).digest('base64');

describe('DingTalk emulator', () => {
  let emulator: DingTalkEmulator;
  let clock = Date.now();

  const post = async (query: string, body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${emulator.url}/robot/send?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    expect(response.status).toBe(200);
    return response.json() as Promise<{ errcode: number; errmsg: string }>;
  };
  const signedQuery = (timestamp = clock, key = secret, accessToken = token) =>
    new URLSearchParams({ access_token: accessToken, timestamp: String(timestamp), sign: sign(timestamp, key) }).toString();
  const text = { msgtype: 'text', text: { content: 'hello' } };

  beforeAll(async () => {
    emulator = await startDingTalkEmulator({
      robots: { [token]: secret, keyworded: { keywords: ['告警'] }, walled: { ipWhitelist: ['10.0.0.1'] } },
      now: () => clock,
    });
  });
  afterAll(() => emulator.close());
  beforeEach(() => {
    clock = Date.now();
    emulator.reset();
  });

  it('accepts a correctly signed message with DingTalk success body and records it', async () => {
    expect(await post(signedQuery(), text)).toEqual({ errcode: 0, errmsg: 'ok' });
    expect(emulator.messages).toHaveLength(1);
    expect(emulator.messages[0]).toMatchObject({ accessToken: token, timestamp: String(clock), sign: sign(clock), body: text });
    expect(emulator.messages[0].rawSign).toBe(encodeURIComponent(sign(clock)));
    expect(emulator.rejected).toBe(0);
  });

  it('decodes the query with form rules, so a sign sent without URL-encoding fails as on DingTalk', async () => {
    // Find a timestamp whose signature has a '+', the character form decoding turns into a space.
    let timestamp = clock;
    while (!sign(timestamp).includes('+')) timestamp += 1;
    const unencoded = `access_token=${token}&timestamp=${timestamp}&sign=${sign(timestamp)}`;
    expect(await post(unencoded, text)).toEqual({ errcode: 310000, errmsg: 'sign not match' });
    expect(await post(signedQuery(timestamp), text)).toEqual({ errcode: 0, errmsg: 'ok' });
  });

  it('refuses a wrong signature, a wrong secret and a missing sign with 310000 sign not match', async () => {
    expect(await post(signedQuery(clock, `${secret}x`), text)).toEqual({ errcode: 310000, errmsg: 'sign not match' });
    expect(await post(`access_token=${token}&timestamp=${clock}`, text)).toMatchObject({ errcode: 310000, errmsg: 'sign not match' });
    expect(emulator.messages).toHaveLength(0);
    expect(emulator.rejected).toBe(2);
  });

  it('allows one hour of clock difference and refuses more with 310000 invalid timestamp', async () => {
    const hour = 3_600_000;
    expect((await post(signedQuery(clock - hour + 1000), text)).errcode).toBe(0);
    expect((await post(signedQuery(clock + hour - 1000), text)).errcode).toBe(0);
    expect(await post(signedQuery(clock - hour - 1000), text)).toEqual({ errcode: 310000, errmsg: 'invalid timestamp' });
    expect(await post(signedQuery(clock + hour + 1000), text)).toEqual({ errcode: 310000, errmsg: 'invalid timestamp' });
    // Seconds instead of milliseconds is the classic mistake.
    expect((await post(signedQuery(Math.floor(clock / 1000)), text)).errmsg).toBe('invalid timestamp');
  });

  it('answers token, method and content-type mistakes with DingTalk errcodes, still HTTP 200', async () => {
    expect(await post(signedQuery(clock, secret, 'no-such-robot'), text)).toEqual({ errcode: 300001, errmsg: 'token is not exist' });
    expect((await post(`timestamp=${clock}`, text)).errcode).toBe(40035);
    expect((await post(`access_token=&timestamp=${clock}`, text)).errcode).toBe(400101);
    expect((await post(signedQuery(), text, { 'content-type': 'text/plain' })).errcode).toBe(43004);
    const get = await fetch(`${emulator.url}/robot/send?${signedQuery()}`);
    expect(get.status).toBe(200);
    expect((await get.json()).errcode).toBe(43002);
    expect(emulator.messages).toHaveLength(0);
    expect(emulator.rejected).toBe(5);
  });

  it('checks bodies: markdown needs a title (400402), unknown msgtype 400105, over 20000 bytes 460101', async () => {
    const markdown = await post(signedQuery(), { msgtype: 'markdown', markdown: { text: '# x' } });
    expect(markdown.errcode).toBe(400402);
    expect(markdown.errmsg).toContain('markdown --》 title');
    expect((await post(signedQuery(), { msgtype: 'video' })).errcode).toBe(400105);
    const fits = { msgtype: 'text', text: { content: '' } };
    fits.text.content = 'x'.repeat(20_000 - JSON.stringify(fits).length);
    expect(Buffer.byteLength(JSON.stringify(fits))).toBe(20_000);
    expect((await post(signedQuery(), fits)).errcode).toBe(0);
    const tooLong = { msgtype: 'text', text: { content: `${fits.text.content}x` } };
    expect(await post(signedQuery(), tooLong)).toEqual({ errcode: 460101, errmsg: 'message too long, exceed 20000 bytes' });
  });

  it('enforces keyword and IP whitelist security settings with 310000', async () => {
    expect(await post('access_token=keyworded', text)).toEqual({ errcode: 310000, errmsg: 'keywords not in content' });
    expect((await post('access_token=keyworded', { msgtype: 'text', text: { content: '磁盘告警' } })).errcode).toBe(0);
    expect(await post('access_token=walled', text)).toEqual({ errcode: 310000, errmsg: 'ip 127.0.0.1 not in whitelist' });
  });

  it('takes 20 messages a minute per robot, answers the 21st 130101 and mutes the robot for 10 minutes', async () => {
    for (let i = 0; i < 20; i++) {
      clock += 100;
      expect((await post(signedQuery(), text)).errcode).toBe(0);
    }
    clock += 100;
    expect(await post(signedQuery(), text)).toEqual({ errcode: 130101, errmsg: 'send too fast, exceed 20 times per minute' });
    const mutedAt = clock;
    expect(emulator.mutedUntil(token)).toBe(mutedAt + 600_000);
    // A minute later the window is empty, but the robot is still muted.
    clock += 120_000;
    expect((await post(signedQuery(), text)).errcode).toBe(130101);
    clock = mutedAt + 600_001;
    expect((await post(signedQuery(), text)).errcode).toBe(0);
    expect(emulator.messages).toHaveLength(21);
  });

  it('counts the minute as a sliding window', async () => {
    for (let i = 0; i < 20; i++) {
      clock += 1000;
      expect((await post(signedQuery(), text)).errcode).toBe(0);
    }
    // The first message is now 60 s old: one slot frees.
    clock = emulator.messages[0].receivedAt + 60_000;
    expect((await post(signedQuery(), text)).errcode).toBe(0);
    expect(emulator.mutedUntil(token)).toBeUndefined();
  });

  it('injects faults for the next N requests: HTTP 5xx, a chosen errcode, no answer', async () => {
    emulator.failNext({ status: 502 });
    emulator.failNext({ errcode: -1, errmsg: '系统繁忙' }, 2);
    const bad = await fetch(`${emulator.url}/robot/send?${signedQuery()}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(text),
    });
    expect(bad.status).toBe(502);
    await bad.text();
    expect(await post(signedQuery(), text)).toEqual({ errcode: -1, errmsg: '系统繁忙' });
    expect(await post(signedQuery(), text)).toEqual({ errcode: -1, errmsg: '系统繁忙' });
    expect((await post(signedQuery(), text)).errcode).toBe(0);

    emulator.failNext({ hang: true });
    const hung = await fetch(`${emulator.url}/robot/send?${signedQuery()}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(text),
      signal: AbortSignal.timeout(200),
    }).catch((error: Error) => error);
    expect(hung).toBeInstanceOf(Error);
    expect(emulator.requests.map((request) => request.fault ?? request.errcode)).toEqual(['status', 'errcode', 'errcode', 0, 'hang']);
    expect(emulator.rejected).toBe(4);
    expect(emulator.messages).toHaveLength(1);
  });
});
