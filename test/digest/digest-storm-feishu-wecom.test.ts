import crypto from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { fullScopes, type Caller } from '../../src/auth';
import type { Channel, Channels } from '../../src/channels/channel';
import { FeishuBotChannel } from '../../src/channels/feishu-bot';
import { WeComRobotChannel } from '../../src/channels/wecom-robot';
import { loadConfig } from '../../src/config';
import { Dispatcher } from '../../src/delivery/dispatcher';
import { DeliveryEvents } from '../../src/delivery/events';
import { DeliveryService } from '../../src/delivery/service';
import { Digests } from '../../src/digest/digests';
import { createLogger } from '../../src/logger';
import { SecretBox } from '../../src/secrets';
import { busiestWindow, startFeishuEmulator } from '../peers/feishu-emulator';
import { busiestMinute, startWeComEmulator } from '../peers/wecom-emulator';
import { describeOnStores } from '../support/db';
import { eventually } from '../support/gateway';
import { openTestStores } from '../support/stores';

// The DingTalk storm of digest-storm.test.ts, for a Feishu bot and a WeCom robot: 1,000 alerts handed over at once,
// on a clock the test moves (each emulator keeps the same clock, so its per-second and per-minute counts are the
// provider's), and what reaches the group, in how many messages, and what each delivery says.

const secondMs = 1000;
const minuteMs = 60_000;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Emulator {
  url: string;
  messages: { body: any; receivedAt: number }[];
  readonly rejected: number;
  close(): Promise<void>;
}

/** The gateway's parts on one database, sending `channel` through `make` to an emulator on the test's clock. */
async function harness<E extends Emulator>(
  kind: 'sqlite' | 'postgres',
  channelName: 'FEISHU' | 'WECOM',
  startEmulator: (now: () => number) => Promise<E>,
  makeChannel: (url: string, now: () => number) => Channel,
) {
  let clock = Date.now();
  const now = () => clock;
  const emulator = await startEmulator(now);
  cleanups.push(() => emulator.close());
  const stores = await openTestStores(kind);
  cleanups.push(() => stores.close());
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: 'file:unused.db',
    DISPATCH_POLL_MS: '10',
    DISPATCH_CONCURRENCY: '16',
    RETRY_BASE_DELAY_MS: '1000',
    RETRY_MAX_DELAY_MS: '5000',
    PROVIDER_TIMEOUT_MS: '2000',
  });
  const secretBox = new SecretBox(crypto.randomBytes(32));
  const logger = createLogger({ level: 'silent', pretty: false });
  const store = stores.store;
  const events = new DeliveryEvents();
  const channel = makeChannel(emulator.url, now);
  const channels = { [channelName]: channel } as unknown as Channels;
  const digests = new Digests({ store, events, logger });
  const dispatcher = new Dispatcher({ store, channels, secretBox, events, logger, config, now, random: () => 0.5, digests });
  cleanups.push(async () => {
    await dispatcher.stop(3000);
    await channel.close?.();
  });
  const service = new DeliveryService({ store, channels, dispatcher, events, secretBox, config, now });
  const caller: Caller = { id: 'env:1', name: 'test', scopes: fullScopes };

  const pending = async () => {
    const lists = await Promise.all(
      (['QUEUED', 'RETRYING', 'SENDING'] as const).map((status) => store.listDeliveries({ status }, { limit: 5000, inverted: false })),
    );
    return lists.flat();
  };
  const settle = () =>
    eventually(async () => {
      if (dispatcher.inFlightCount > 0) return false;
      return (await pending()).every((row) => row.status !== 'SENDING' && row.nextAttemptAt! > clock);
    }, 20_000);

  return {
    emulator,
    store,
    pending,
    start: () => dispatcher.start(),
    send: (input: Record<string, unknown>) => service.send(channelName, input, caller, { wait: false }),
    rows: async (ids: readonly string[]) => {
      const byId = new Map((await store.getDeliveries(ids)).map((row) => [row.id, row]));
      return ids.map((id) => byId.get(id)!);
    },
    get clock() {
      return clock;
    },
    async advance(ms: number, stepMs: number) {
      for (let moved = 0; moved < ms; moved += stepMs) {
        clock += Math.min(stepMs, ms - moved);
        await settle();
      }
    },
  };
}

const alert = (n: number) => `disk full on host-${n} (alert ${n} of the storm)`;

/** Every alert's text is found exactly once in what the group received. */
function expectEveryAlertOnce(texts: string) {
  for (let n = 0; n < 1000; n++) expect(texts.split(alert(n))).toHaveLength(2);
}

describeOnStores('alert-storm digests to one Feishu bot and one WeCom robot', (kind) => {
  it('Feishu: 1,000 alerts in a storm reach the group within two minutes in card digests, never past 5/s nor 100/min', async () => {
    const token = crypto.randomBytes(16).toString('hex');
    const secret = crypto.randomBytes(16).toString('base64url');
    const h = await harness(
      kind,
      'FEISHU',
      (now) => startFeishuEmulator({ bots: { [token]: secret }, now }),
      (url, now) => new FeishuBotChannel({ baseUrl: url, timeoutMs: 2000, now }),
    );
    const firstAt = h.clock;
    const ids: string[] = [];
    for (let n = 0; n < 1000; n++) {
      // One in 250 mentions @all; one in ten is a rich-text post with a title.
      const extra = n % 10 === 4 ? { msgType: 'POST', title: `host-${n}` } : {};
      ids.push((await h.send({ token, secret, content: alert(n), atAll: n % 250 === 9, ...extra })).id);
    }
    h.start();
    await h.advance(2 * minuteMs, secondMs);
    expect(await h.pending()).toEqual([]);

    const messages = h.emulator.messages;
    expect(Math.max(...messages.map((message) => message.receivedAt)) - firstAt).toBeLessThan(2 * minuteMs);
    // Never refused (11232 or anything else), never past 5 a second nor 100 a minute, every body within 20 KB.
    expect(h.emulator.rejected).toBe(0);
    expect(busiestWindow(messages, secondMs)).toBeLessThanOrEqual(5);
    expect(busiestWindow(messages, minuteMs)).toBeLessThanOrEqual(100);
    for (const message of messages) {
      expect(message.signatureVerified).toBe(true);
      expect(message.bodyBytes).toBeLessThanOrEqual(20_000);
    }

    const all = await h.rows(ids);
    expect(all.every((row) => row.status === 'SENT')).toBe(true);
    const folded = all.filter((row) => row.digestId !== null);
    const alone = all.filter((row) => row.digestId === null);
    expect(folded.length).toBeGreaterThan(1000 - 16);
    const carriers = new Set(folded.map((row) => row.digestId!));
    expect(carriers.size + alone.length).toBe(messages.length);

    // Digests are interactive cards: the title in the header, the folded messages in one markdown element.
    const cards = messages.filter((message) => message.body.msg_type === 'interactive');
    expect(cards).toHaveLength(carriers.size);
    for (const card of cards) {
      expect(card.body.card.header.title.content).toMatch(/^Digest: \d+ messages/);
      expect(card.body.card.elements).toEqual([{ tag: 'markdown', content: expect.any(String) }]);
    }
    const textOf = (message: { body: any }): string =>
      message.body.msg_type === 'interactive'
        ? message.body.card.elements[0].content
        : message.body.msg_type === 'post'
          ? JSON.stringify(message.body.content.post)
          : message.body.content.text;
    expectEveryAlertOnce(messages.map(textOf).join('\n'));
    // A post's title is kept with its text (one of the posts that were folded: the storm's first ones may go alone).
    const cardText = cards.map(textOf).join('\n');
    const foldedPost = Array.from({ length: 100 }, (_, i) => i * 10 + 4).find((n) => cardText.includes(alert(n)));
    expect(foldedPost).toBeDefined();
    expect(cardText).toContain(`**host-${foldedPost}**\n${alert(foldedPost!)}`);

    // @all is kept: the message that carried an @all alert mentions all.
    for (let n = 9; n < 1000; n += 250) {
      const carrier = messages.find((message) => textOf(message).includes(alert(n)))!;
      if (carrier.body.msg_type === 'interactive') expect(textOf(carrier)).toMatch(/\n<at id=all><\/at>$/);
      else expect(textOf(carrier)).toContain('<at user_id="all">');
    }
  }, 60_000);

  it('WeCom: 1,000 alerts in a storm reach the group within two minutes in markdown digests, never past 20/min', async () => {
    const key = crypto.randomUUID();
    const h = await harness(
      kind,
      'WECOM',
      (now) => startWeComEmulator({ keys: [key], now }),
      (url) => new WeComRobotChannel({ baseUrl: url, timeoutMs: 2000 }),
    );
    const firstAt = h.clock;
    const ids: string[] = [];
    const mobileOrAll = new Set<number>();
    for (let n = 0; n < 1000; n++) {
      // A mobile mention (one in 250) or @all (once) cannot be written in markdown: those go alone. One in 100
      // mentions a user id, which a markdown digest carries as <@userid>.
      let mention = {};
      if (n % 250 === 7) mention = { mentionedMobileList: [`+86138000${String(n).padStart(5, '0')}`] };
      else if (n === 500) mention = { mentionedList: ['@all'] };
      else if (n % 100 === 3) mention = { mentionedList: [`user${n}`] };
      if (n % 250 === 7 || n === 500) mobileOrAll.add(n);
      ids.push((await h.send({ key, content: alert(n), ...mention })).id);
    }
    h.start();
    await h.advance(2 * minuteMs, secondMs);
    expect(await h.pending()).toEqual([]);

    const messages = h.emulator.messages;
    expect(Math.max(...messages.map((message) => message.receivedAt)) - firstAt).toBeLessThan(2 * minuteMs);
    // Never refused (45009 or anything else), never past 20 a minute, every markdown within 4096 bytes.
    expect(h.emulator.rejected).toBe(0);
    expect(busiestMinute(messages)).toBeLessThanOrEqual(20);
    const digests = messages.filter((message) => message.body.msgtype === 'markdown');
    for (const message of digests) expect(Buffer.byteLength(message.body.markdown.content, 'utf8')).toBeLessThanOrEqual(4096);

    const all = await h.rows(ids);
    expect(all.every((row) => row.status === 'SENT')).toBe(true);
    const alone = all.filter((row) => row.digestId === null);
    const carriers = new Set(all.filter((row) => row.digestId !== null).map((row) => row.digestId!));
    expect(carriers.size + alone.length).toBe(messages.length);
    expect(digests).toHaveLength(carriers.size);

    const textOf = (message: { body: any }): string => (message.body.msgtype === 'markdown' ? message.body.markdown.content : message.body.text.content);
    expectEveryAlertOnce(messages.map(textOf).join('\n'));

    // Mobile mentions and @all went alone, as text messages with their mention lists.
    for (const n of mobileOrAll) {
      expect(all[n]!.digestId).toBeNull();
      const message = messages.find((message) => textOf(message) === alert(n))!;
      expect(message.body.msgtype).toBe('text');
      if (n === 500) expect(message.body.text.mentioned_list).toEqual(['@all']);
      else expect(message.body.text.mentioned_mobile_list).toEqual([`138000${String(n).padStart(5, '0')}`]);
    }
    // A folded user-id mention is written <@userid> in its digest.
    for (let n = 3; n < 1000; n += 100) {
      const carrier = messages.find((message) => textOf(message).includes(alert(n)))!;
      if (carrier.body.msgtype === 'markdown') expect(textOf(carrier)).toContain(`<@user${n}>`);
      else expect(carrier.body.text.mentioned_list).toEqual([`user${n}`]);
    }
  }, 60_000);
}, { timeout: 90_000 });
