import crypto from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startWeComEmulator, type WeComEmulator } from '../peers/wecom-emulator';

// The emulator is only as good as its refusals: each check here is one the gateway could get wrong.

const key = crypto.randomUUID();
const tailPattern = /^(.*), hint: \[\d+_\d+_[0-9a-f]{32}\], from ip: 127\.0\.0\.1, more info at https:\/\/open\.work\.weixin\.qq\.com\/devtool\/query\?e=(-?\d+)$/;

describe('WeCom group robot emulator', () => {
  let emulator: WeComEmulator;
  let clock = Date.now();

  const post = async (body: unknown, robotKey: string | null = key) => {
    const query = robotKey === null ? '' : `?key=${encodeURIComponent(robotKey)}`;
    const response = await fetch(`${emulator.url}/cgi-bin/webhook/send${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    expect(response.status).toBe(200);
    const answer = (await response.json()) as { errcode: number; errmsg: string };
    if (answer.errcode === 0) return answer;
    // Every refusal carries WeCom's tail, whose more-info link names the same errcode.
    const match = tailPattern.exec(answer.errmsg);
    expect(match, answer.errmsg).not.toBeNull();
    expect(Number(match![2])).toBe(answer.errcode);
    return { errcode: answer.errcode, errmsg: match![1] };
  };
  const text = (content = 'hello') => ({ msgtype: 'text', text: { content } });

  beforeAll(async () => {
    emulator = await startWeComEmulator({ keys: [key], now: () => clock });
  });
  afterAll(() => emulator.close());
  beforeEach(() => {
    clock = Date.now();
    emulator.reset();
  });

  it('accepts text with mentions and markdown, answers {errcode 0, errmsg ok} and records them', async () => {
    const mentioned = { msgtype: 'text', text: { content: '告警', mentioned_list: ['zhangsan', '@all'], mentioned_mobile_list: ['13800138000'] } };
    expect(await post(mentioned)).toEqual({ errcode: 0, errmsg: 'ok' });
    expect(await post({ msgtype: 'markdown', markdown: { content: '## 标题\n> 引用 <@zhangsan>' } })).toEqual({ errcode: 0, errmsg: 'ok' });
    expect(emulator.messages.map((message) => message.body)).toEqual([
      mentioned,
      { msgtype: 'markdown', markdown: { content: '## 标题\n> 引用 <@zhangsan>' } },
    ]);
    expect(emulator.messages[0]).toMatchObject({ key, contentBytes: 6 });
    expect(emulator.rejected).toBe(0);
  });

  it('refuses an unknown or missing key with 93000 invalid webhook url', async () => {
    expect(await post(text(), crypto.randomUUID())).toEqual({ errcode: 93000, errmsg: 'invalid webhook url' });
    expect(await post(text(), null)).toEqual({ errcode: 93000, errmsg: 'invalid webhook url' });
    expect(await post(text(), '')).toEqual({ errcode: 93000, errmsg: 'invalid webhook url' });
    expect(emulator.messages).toHaveLength(0);
    expect(emulator.rejected).toBe(3);
  });

  it('checks bodies: msgtype 40008, empty content 44004, bad JSON and mention lists 40058', async () => {
    expect(await post({ msgtype: 'video' })).toEqual({ errcode: 40008, errmsg: 'invalid message type' });
    expect(await post({ text: { content: 'x' } })).toEqual({ errcode: 40008, errmsg: 'invalid message type' });
    expect(await post(text(''))).toEqual({ errcode: 44004, errmsg: 'empty content' });
    expect(await post({ msgtype: 'markdown', markdown: {} })).toEqual({ errcode: 44004, errmsg: 'empty content' });
    expect((await post('{not json')).errcode).toBe(40058);
    expect((await post({ msgtype: 'text', text: { content: 'x', mentioned_list: 'zhangsan' } })).errcode).toBe(40058);
    expect(emulator.messages).toHaveLength(0);
  });

  it('counts sizes in UTF-8 bytes: text up to 2048, markdown up to 4096, 40058 beyond', async () => {
    // 682 Chinese characters and 2 ASCII ones: exactly 2048 bytes.
    const fits = `${'告'.repeat(682)}xx`;
    expect(Buffer.byteLength(fits)).toBe(2048);
    expect((await post(text(fits))).errcode).toBe(0);
    expect(await post(text(`${fits}x`))).toEqual({ errcode: 40058, errmsg: 'text.content exceed max length 2048. invalid Request Parameter' });
    const markdown = (content: string) => ({ msgtype: 'markdown', markdown: { content } });
    expect((await post(markdown(`${fits}${fits}`))).errcode).toBe(0);
    expect(await post(markdown(`${fits}${fits}x`))).toEqual({
      errcode: 40058,
      errmsg: 'markdown.content exceed max length 4096. invalid Request Parameter',
    });
    expect(emulator.messages.map((message) => message.contentBytes)).toEqual([2048, 4096]);
  });

  it('takes 20 messages a minute per robot and answers the 21st 45009, without muting: a sliding minute later it takes more', async () => {
    const other = crypto.randomUUID();
    emulator.addKey(other);
    for (let i = 0; i < 20; i++) {
      clock += 1000;
      expect((await post(text(`#${i}`))).errcode).toBe(0);
    }
    clock += 100;
    expect(await post(text('21st'))).toEqual({ errcode: 45009, errmsg: 'api freq out of limit' });
    // Another robot has its own minute.
    expect((await post(text('other'), other)).errcode).toBe(0);
    // The first message is now 60 s old: one slot frees.
    clock = emulator.messages[0].receivedAt + 60_000;
    expect((await post(text('late'))).errcode).toBe(0);
    expect((await post(text('too soon'))).errcode).toBe(45009);
    expect(emulator.busiestMinute).toBe(20);
    expect(emulator.messages).toHaveLength(22);
  });

  it('injects faults for the next N requests: HTTP 5xx, a chosen errcode, no answer', async () => {
    emulator.failNext({ status: 502 });
    emulator.failNext({ errcode: -1, errmsg: 'system busy' }, 2);
    const bad = await fetch(`${emulator.url}/cgi-bin/webhook/send?key=${key}`, { method: 'POST', body: JSON.stringify(text()) });
    expect(bad.status).toBe(502);
    await bad.text();
    expect(await post(text())).toEqual({ errcode: -1, errmsg: 'system busy' });
    expect(await post(text())).toEqual({ errcode: -1, errmsg: 'system busy' });
    expect((await post(text())).errcode).toBe(0);

    emulator.failNext({ hang: true });
    const hung = await fetch(`${emulator.url}/cgi-bin/webhook/send?key=${key}`, {
      method: 'POST',
      body: JSON.stringify(text()),
      signal: AbortSignal.timeout(200),
    }).catch((error: Error) => error);
    expect(hung).toBeInstanceOf(Error);
    expect(emulator.requests.map((request) => request.fault ?? request.errcode)).toEqual(['status', 'errcode', 'errcode', 0, 'hang']);
    expect(emulator.rejected).toBe(4);
    expect(emulator.messages).toHaveLength(1);
  });
});
