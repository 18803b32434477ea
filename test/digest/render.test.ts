import { describe, expect, it } from 'vitest';
import type { DingMessage, FeishuMessage, WeComMessage } from '../../src/channels/channel';
import { dingTalkBody, dingTalkBodyLimitBytes } from '../../src/channels/ding-talk-robot';
import { FeishuBotChannel, feishuBody, feishuBodyBytes, feishuBodyLimitBytes } from '../../src/channels/feishu-bot';
import { WeComRobotChannel, weComBody, weComContentLimitBytes } from '../../src/channels/wecom-robot';
import { pick } from '../../src/digest/digests';
import { noMentions, renderDigest, type DigestEntry } from '../../src/digest/render';
import { dingTalkDigest, feishuDigest, weComDigest, weComMarkdownLimitBytes } from '../../src/digest/robots';
import type { DeliveryRow } from '../../src/db/schema';

const at = Date.UTC(2026, 11, 1, 22, 0, 0);
const entry = (n: number, extra: Partial<DigestEntry> = {}): DigestEntry => ({ at: at + n * 1000, text: `alert ${n}`, mentions: noMentions(), ...extra });
const row = (n: number, payload: Record<string, unknown>): DeliveryRow =>
  ({ id: `d${n}`, createdAt: at + n * 1000, payload: JSON.stringify(payload) }) as DeliveryRow;

describe('digest renderers, one per markup family', () => {
  it('robot markdown: a title with the day and span, each entry with its time and its text verbatim, oldest first', () => {
    const digest = renderDigest('robot-markdown', [entry(0, { title: 'Disk', text: 'disk **full**\nline 2' }), entry(61, { url: 'https://x.test/a' })]);
    expect(digest.title).toBe('Digest: 2 messages, 2026-12-01 22:00:00–22:01:01 UTC');
    expect(digest.content).toBe(
      '#### Digest: 2 messages, 2026-12-01 22:00:00–22:01:01 UTC\n\n**22:00:00** **Disk**\ndisk **full**\nline 2\n\n**22:01:01**\nalert 61\n[https://x.test/a](https://x.test/a)',
    );
  });

  it('text: the same entries without markup', () => {
    expect(renderDigest('text', [entry(1), entry(2, { title: 'T' })]).content).toBe(
      'Digest: 2 messages, 2026-12-01 22:00:01–22:00:02 UTC\n\n[22:00:01]\nalert 1\n\n[22:00:02] T\nalert 2',
    );
  });

  it('carries the union of the mentions', () => {
    const digest = renderDigest('text', [
      entry(1, { mentions: { userIds: ['a'], mobiles: ['138'], all: false } }),
      entry(2, { mentions: { userIds: ['a', 'b'], mobiles: [], all: true } }),
    ]);
    expect(digest.mentions).toEqual({ userIds: ['a', 'b'], mobiles: ['138'], all: true });
  });
});

describe('channel digests', () => {
  const ding = dingTalkDigest({ maxBytes: dingTalkBodyLimitBytes, body: dingTalkBody });
  const carrier: DingMessage = { accessToken: 't', secret: 's', msgType: 'TEXT', content: 'first', atMobiles: [], atUserIds: [], atAll: false };

  it('DingTalk: a markdown message with the carrier credentials and the mentions in `at` and in the text', () => {
    const message = ding.build(carrier, renderDigest('robot-markdown', [entry(1, { mentions: { userIds: [], mobiles: ['13800000001'], all: false } })]));
    expect(message).toMatchObject({ accessToken: 't', secret: 's', msgType: 'MARKDOWN', atMobiles: ['13800000001'] });
    const body = dingTalkBody(message) as any;
    expect(body.msgtype).toBe('markdown');
    expect(body.markdown.text).toContain('@13800000001');
  });

  it('packs as many waiting messages as fit in one DingTalk body, oldest first, and every text whole', () => {
    const long = 'x'.repeat(180);
    const waiting = Array.from({ length: 300 }, (_, n) => row(n + 1, { msgType: 'TEXT', content: `${n + 1} ${long}`, atMobiles: [], atUserIds: [], atAll: false }));
    const own = ding.entry({ msgType: 'TEXT', content: 'own' }, at)!;
    const { ids, entries } = pick(ding, carrier, own, waiting);
    expect(ids.length).toBeGreaterThan(50);
    expect(ids).toEqual(waiting.slice(0, ids.length).map((delivery) => delivery.id));
    const size = ding.size(ding.build(carrier, renderDigest('robot-markdown', entries)));
    expect(size).toBeLessThanOrEqual(dingTalkBodyLimitBytes);
    // One more would not have fitted.
    const more = [...entries, ding.entry(JSON.parse(waiting[ids.length]!.payload), waiting[ids.length]!.createdAt)!];
    expect(ding.size(ding.build(carrier, renderDigest('robot-markdown', more)))).toBeGreaterThan(dingTalkBodyLimitBytes);
    const text = ding.build(carrier, renderDigest('robot-markdown', entries)).content;
    for (const delivery of waiting.slice(0, ids.length)) expect(text).toContain(JSON.parse(delivery.payload).content);
  });

  it('a carrier alone is no digest', () => {
    expect(pick(ding, carrier, ding.entry({ content: 'own' }, at)!, [])).toEqual({ ids: [], entries: [] });
  });

  it('WeCom: markdown content of at most 4096 bytes, mentions as <@userid>; a mobile mention or @all goes alone', () => {
    const key: WeComMessage = { key: 'k', msgType: 'TEXT', content: 'own', mentionedList: [], mentionedMobileList: [] };
    expect(weComDigest.entry({ content: 'x', mentionedMobileList: ['138'] }, at)).toBeUndefined();
    expect(weComDigest.entry({ content: 'x', mentionedList: ['@all'] }, at)).toBeUndefined();
    const waiting = Array.from({ length: 200 }, (_, n) =>
      row(n + 1, { msgType: 'TEXT', content: `告警 ${n + 1} 磁盘已满`, mentionedList: n === 2 ? ['zhangsan'] : [], mentionedMobileList: [] }),
    );
    const { ids, entries } = pick(weComDigest, key, weComDigest.entry({ content: 'own' }, at)!, waiting);
    expect(ids.length).toBeGreaterThan(10);
    expect(ids.length).toBeLessThan(200);
    const message = weComDigest.build(key, renderDigest('robot-markdown', entries));
    expect(message).toMatchObject({ key: 'k', msgType: 'MARKDOWN', mentionedList: [], mentionedMobileList: [] });
    expect(Buffer.byteLength(message.content)).toBeLessThanOrEqual(weComMarkdownLimitBytes);
    expect(message.content).toContain('<@zhangsan>');
    expect(message.content).toContain('告警 1 磁盘已满');
  });

  it('WeCom: the digest is what the channel sends as MARKDOWN, under the channel\'s own markdown limit', () => {
    expect(weComMarkdownLimitBytes).toBe(weComContentLimitBytes.MARKDOWN);
    expect(new WeComRobotChannel({ baseUrl: 'http://127.0.0.1:9', timeoutMs: 1000 }).digest).toBe(weComDigest);
    const message = weComDigest.build(
      { key: 'k', msgType: 'TEXT', content: 'own', mentionedList: [], mentionedMobileList: [] },
      renderDigest('robot-markdown', [entry(1, { mentions: { userIds: ['lisi'], mobiles: [], all: false } })]),
    );
    const body = weComBody(message) as any;
    expect(body).toEqual({ msgtype: 'markdown', markdown: { content: message.content } });
    expect(weComDigest.size(message)).toBe(Buffer.byteLength(body.markdown.content, 'utf8'));
  });

  const feishu = feishuDigest({ maxBytes: feishuBodyLimitBytes, size: feishuBodyBytes });
  const bot: FeishuMessage = { token: 'tok', secret: 'sec', msgType: 'TEXT', content: 'own', atAll: false };

  it('Feishu: the channel declares a card digest under its own body limit, sized by its own body', () => {
    const channel = new FeishuBotChannel({ baseUrl: 'http://127.0.0.1:9', timeoutMs: 1000 });
    expect(channel.digest.family).toBe('robot-markdown');
    expect(channel.digest.maxBytes).toBe(feishuBodyLimitBytes);
    const message = channel.digest.build(bot, renderDigest('robot-markdown', [entry(1), entry(2)]));
    expect(channel.digest.size(message)).toBe(feishuBodyBytes(message));
  });

  it('Feishu: a CARD whose markdown element folds the waiting messages, atAll the union, the body at most 20,000 bytes', () => {
    const waiting = Array.from({ length: 600 }, (_, n) =>
      row(n + 1, n % 3 === 0 ? { msgType: 'POST', title: `标题 ${n + 1}`, content: `告警 ${n + 1}\n第二行 ${'y'.repeat(60)}`, atAll: n === 5 } : { msgType: 'TEXT', content: `alert ${n + 1} ${'y'.repeat(80)}`, atAll: n === 5 }),
    );
    const { ids, entries } = pick(feishu, bot, feishu.entry({ msgType: 'TEXT', content: 'own' }, at)!, waiting);
    expect(ids.length).toBeGreaterThan(50);
    expect(ids.length).toBeLessThan(600);
    expect(ids).toEqual(waiting.slice(0, ids.length).map((delivery) => delivery.id));
    const message = feishu.build(bot, renderDigest('robot-markdown', entries));
    expect(message).toMatchObject({ token: 'tok', secret: 'sec', msgType: 'CARD', atAll: true });
    expect(message.title).toMatch(/^Digest: \d+ messages/);
    // The body as sent (signature fields counted) is at most 20,000 bytes; one more message would not have fitted.
    const body = feishuBody(message) as any;
    expect(feishuBodyBytes(message)).toBeLessThanOrEqual(20_000);
    expect(Buffer.byteLength(JSON.stringify({ ...body, timestamp: '1764626400', sign: 'A'.repeat(44) }))).toBeLessThanOrEqual(20_000);
    const more = [...entries, feishu.entry(JSON.parse(waiting[ids.length]!.payload), waiting[ids.length]!.createdAt)!];
    expect(feishu.size(feishu.build(bot, renderDigest('robot-markdown', more)))).toBeGreaterThan(20_000);
    // An interactive card: the title in the header, the digest in one markdown element, @all at its end.
    expect(body.msg_type).toBe('interactive');
    expect(body.card.header.title.content).toBe(message.title);
    expect(body.card.elements).toHaveLength(1);
    expect(body.card.elements[0].tag).toBe('markdown');
    expect(body.card.elements[0].content).toMatch(/\n<at id=all><\/at>$/);
    const markdown = body.card.elements[0].content as string;
    for (const delivery of waiting.slice(0, ids.length)) expect(markdown).toContain(JSON.parse(delivery.payload).content);
    expect(markdown).toContain('**22:00:01** **标题 1**\n告警 1\n第二行');
  });
});
