import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { busiestWindow, feishuEmulatorMaxBodyBytes, startFeishuEmulator, type FeishuEmulator } from '../peers/feishu-emulator';

// The emulator is checked against hand-made requests (fetch and node:crypto), not the gateway's code.
const token = crypto.randomUUID();
const secret = 'demo';
let clock = 1_599_360_473_000;
const sign = (timestamp: string, key = `${timestamp}\n${secret}`, message = '') =>
  crypto.createHmac('sha256', key).update(message).digest('base64');

describe('Feishu emulator', () => {
  let emulator: FeishuEmulator;
  const post = async (body: unknown, path = `/open-apis/bot/v2/hook/${token}`, method = 'POST') => {
    const response = await fetch(`${emulator.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: method === 'POST' ? (typeof body === 'string' ? body : JSON.stringify(body)) : undefined,
    });
    return { status: response.status, body: (await response.json().catch(() => undefined)) as any };
  };
  const signed = (extra: Record<string, unknown> = {}) => {
    const timestamp = String(Math.floor(clock / 1000));
    return { msg_type: 'text', content: { text: 'hi' }, timestamp, sign: sign(timestamp), ...extra };
  };

  beforeAll(async () => {
    emulator = await startFeishuEmulator({
      bots: {
        [token]: secret,
        open: undefined,
        guarded: { keywords: ['告警'] },
        fenced: { ipWhitelist: ['10.0.0.1'] },
      },
      now: () => clock,
    });
  });
  afterAll(() => emulator.close());
  beforeEach(() => {
    emulator.reset();
    clock += 120_000;
  });

  it('accepts the documented signature with Feishu’s success answer, and records the message without timestamp/sign', async () => {
    expect(await post(signed())).toEqual({
      status: 200,
      body: { StatusCode: 0, StatusMessage: 'success', code: 0, data: {}, msg: 'success' },
    });
    expect(emulator.messages).toHaveLength(1);
    expect(emulator.messages[0]).toMatchObject({ token, signatureVerified: true, body: { msg_type: 'text', content: { text: 'hi' } } });
  });

  it('answers 19021 for the backwards signature, a missing one, and a timestamp over an hour away (or in ms)', async () => {
    const timestamp = String(Math.floor(clock / 1000));
    const refusals = [
      signed({ sign: sign(timestamp, secret, `${timestamp}\n${secret}`) }),
      { msg_type: 'text', content: { text: 'hi' } },
      signed({ timestamp: String(Math.floor(clock / 1000) - 3601), sign: sign(String(Math.floor(clock / 1000) - 3601)) }),
      signed({ timestamp: String(clock), sign: sign(String(clock)) }),
    ];
    for (const body of refusals) {
      expect(await post(body)).toEqual({
        status: 200,
        body: { code: 19021, data: {}, msg: 'sign match fail or timestamp is not within one hour from current time' },
      });
    }
    expect(emulator.messages).toHaveLength(0);
    expect(emulator.rejected).toBe(4);
  });

  it('answers 19001 for an unknown token, 9499 with HTTP 400 for a body that is not JSON, 19002 for an unknown msg_type', async () => {
    expect((await post(signed(), `/open-apis/bot/v2/hook/${crypto.randomUUID()}`)).body).toMatchObject({ code: 19001 });
    expect(await post('{not json')).toEqual({ status: 400, body: { code: 9499, data: {}, msg: 'Bad Request' } });
    expect((await post(signed({ msg_type: 'markdown' }))).body).toMatchObject({ code: 19002 });
    expect((await post(signed({ content: { text: '' } }))).body).toMatchObject({ code: 9499 });
  });

  it('answers 19024 without a keyword, 19022 from an address not allowed', async () => {
    const hook = (name: string) => `/open-apis/bot/v2/hook/${name}`;
    expect((await post({ msg_type: 'text', content: { text: 'hi' } }, hook('guarded'))).body).toMatchObject({ code: 19024, msg: 'Key Words Not Found' });
    expect((await post({ msg_type: 'text', content: { text: '告警: hi' } }, hook('guarded'))).body).toMatchObject({ code: 0 });
    expect((await post({ msg_type: 'text', content: { text: 'hi' } }, hook('fenced'))).body).toMatchObject({ code: 19022, msg: 'Ip Not Allowed' });
  });

  it('refuses a body over 20 KB', async () => {
    const body = { msg_type: 'text', content: { text: 'x'.repeat(feishuEmulatorMaxBodyBytes) } };
    expect((await post(body, '/open-apis/bot/v2/hook/open')).body).toMatchObject({ code: 19036 });
    expect(emulator.messages).toHaveLength(0);
  });

  it('takes 5 a second per bot, then answers 11232; another bot is not affected', async () => {
    const results = [];
    for (let i = 0; i < 6; i++) results.push((await post(signed())).body.code);
    expect(results).toEqual([0, 0, 0, 0, 0, 11232]);
    expect((await post({ msg_type: 'text', content: { text: 'hi' } }, '/open-apis/bot/v2/hook/open')).body.code).toBe(0);
    clock += 1001;
    expect((await post(signed())).body.code).toBe(0);
    expect(busiestWindow(emulator.messages.filter((message) => message.token === token), 1000)).toBe(5);
  });

  it('takes 100 a minute per bot, then answers 11232 until the minute has passed', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 101; i++) {
      codes.push((await post(signed())).body.code);
      clock += 300; // 3.3 a second: under the per-second limit
    }
    expect(codes.slice(0, 100).every((code) => code === 0)).toBe(true);
    expect(codes[100]).toBe(11232);
    expect(busiestWindow(emulator.messages, 60_000)).toBe(100);
    clock += 30_000;
    expect((await post(signed())).body.code).toBe(0);
  });

  it('injects faults: a status, a code, a hang', async () => {
    emulator.failNext({ status: 502 });
    expect((await post(signed())).status).toBe(502);
    emulator.failNext({ code: 11232 });
    expect((await post(signed())).body).toMatchObject({ code: 11232 });
    emulator.failNext({ hang: true });
    const hung = await fetch(`${emulator.url}/open-apis/bot/v2/hook/${token}`, {
      method: 'POST',
      body: JSON.stringify(signed()),
      signal: AbortSignal.timeout(300),
    }).catch((error: unknown) => error);
    expect(hung).toBeInstanceOf(Error);
    expect(emulator.requests.map((request) => request.fault)).toEqual(['status', 'code', 'hang']);
    expect(emulator.messages).toHaveLength(0);
  });
});
