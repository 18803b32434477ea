import crypto from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { fullScopes, type Caller } from '../../src/auth';
import type { Channels } from '../../src/channels/channel';
import { DingTalkRobotChannel } from '../../src/channels/ding-talk-robot';
import { loadConfig } from '../../src/config';
import type { DeliveryRow } from '../../src/db/schema';
import type { Store } from '../../src/db/store';
import { Dispatcher } from '../../src/delivery/dispatcher';
import { DeliveryEvents } from '../../src/delivery/events';
import { DeliveryService } from '../../src/delivery/service';
import { Digests } from '../../src/digest/digests';
import { createLogger } from '../../src/logger';
import { SecretBox } from '../../src/secrets';
import { busiestMinute, startDingTalkEmulator } from '../peers/ding-talk-emulator';
import { describeOnStores } from '../support/db';
import { eventually } from '../support/gateway';
import { openTestStores } from '../support/stores';

// A storm of alerts to one DingTalk robot, on a clock the test moves (the emulator keeps the same clock, so its
// per-minute count and mute are DingTalk's): what reaches the group, in how many messages, and what each delivery says.

const minuteMs = 60_000;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const newRobot = () => ({ accessToken: crypto.randomBytes(32).toString('hex'), secret: `SEC${crypto.randomBytes(32).toString('hex')}` });

/** The gateway's parts on one database (and, with `replicas`, more dispatchers on more connections to it). */
async function harness(kind: 'sqlite' | 'postgres', options: { digest?: boolean; replicas?: number } = {}) {
  let clock = Date.now();
  const now = () => clock;
  const robot = newRobot();
  const emulator = await startDingTalkEmulator({ robots: { [robot.accessToken]: robot.secret }, now });
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
  const dispatchers: Dispatcher[] = [];
  let service!: DeliveryService;
  for (let replica = 0; replica < (options.replicas ?? 1); replica++) {
    const store: Store = replica === 0 ? stores.store : await stores.another();
    const events = new DeliveryEvents();
    const ding = new DingTalkRobotChannel({ baseUrl: emulator.url, timeoutMs: 2000, now });
    const channels = { DING: ding } as unknown as Channels;
    const digests = options.digest === false ? undefined : new Digests({ store, events, logger });
    const dispatcher = new Dispatcher({ store, channels, secretBox, events, logger, config, now, random: () => 0.5, digests });
    cleanups.push(async () => {
      await dispatcher.stop(3000);
      await ding.close();
    });
    dispatchers.push(dispatcher);
    if (replica === 0) service = new DeliveryService({ store, channels, dispatcher, events, secretBox, config, now });
  }
  const store = stores.store;
  const caller: Caller = { id: 'env:1', name: 'test', scopes: fullScopes };

  const rows = async (ids: readonly string[]) => {
    const found = await store.getDeliveries(ids);
    const byId = new Map(found.map((row) => [row.id, row]));
    return ids.map((id) => byId.get(id)!);
  };
  const pending = async () => {
    const lists = await Promise.all(
      (['QUEUED', 'RETRYING', 'SENDING'] as const).map((status) => store.listDeliveries({ status }, { limit: 5000, inverted: false })),
    );
    return lists.flat();
  };
  const settle = () =>
    eventually(async () => {
      if (dispatchers.some((dispatcher) => dispatcher.inFlightCount > 0)) return false;
      return (await pending()).every((row) => row.status !== 'SENDING' && row.nextAttemptAt! > clock);
    }, 20_000);

  return {
    robot,
    emulator,
    store,
    service,
    caller,
    rows,
    pending,
    settle,
    start: () => dispatchers.forEach((dispatcher) => dispatcher.start()),
    send: (input: Record<string, unknown>, idempotencyKey?: string) =>
      service.send('DING', { ...robot, ...input }, caller, { wait: false, idempotencyKey }),
    get clock() {
      return clock;
    },
    async advance(ms: number, stepMs = 5000) {
      for (let moved = 0; moved < ms; moved += stepMs) {
        clock += Math.min(stepMs, ms - moved);
        await settle();
      }
    },
  };
}

/** Every text the group received, in order. */
const received = (emulator: { messages: { body: any }[] }) =>
  emulator.messages.map((message) => (message.body.msgtype === 'markdown' ? message.body.markdown.text : message.body.text.content) as string);

describeOnStores('alert-storm digests to one DingTalk robot', (kind) => {
  it('1,000 alerts in a storm: all reach the group within a minute, in digests that keep to the pace; each names its digest', async () => {
    const h = await harness(kind);
    const firstAt = h.clock;
    const ids: string[] = [];
    for (let n = 0; n < 1000; n++) {
      // One in a hundred @mentions someone by mobile; one in 250 by user id.
      const mention = n % 100 === 7 ? { atMobiles: [`1380000${String(n).padStart(4, '0')}`] } : n % 250 === 3 ? { atUserIds: [`user${n}`] } : {};
      ids.push((await h.send({ content: `disk full on host-${n} (alert ${n} of the storm)`, ...mention })).id);
    }
    h.start();
    await h.advance(minuteMs, 1000);
    expect(await h.pending()).toEqual([]);
    const lastAt = Math.max(...h.emulator.messages.map((message) => message.receivedAt));
    expect(lastAt - firstAt).toBeLessThan(2 * minuteMs);

    // The robot was never pushed past its pace, never refused, never muted.
    expect(h.emulator.rejected).toBe(0);
    expect(h.emulator.mutedUntil(h.robot.accessToken)).toBeUndefined();
    expect(busiestMinute(h.emulator.messages)).toBeLessThanOrEqual(19);
    expect(h.emulator.messages.length).toBeLessThanOrEqual(19);
    for (const message of h.emulator.messages) expect(message.bodyBytes).toBeLessThanOrEqual(20_000);

    // Every alert's text arrived whole, exactly once.
    const texts = received(h.emulator).join('\n');
    for (let n = 0; n < 1000; n++) {
      expect(texts.split(`disk full on host-${n} (alert ${n} of the storm)`)).toHaveLength(2);
    }

    const all = await h.rows(ids);
    expect(all.every((row) => row.status === 'SENT')).toBe(true);
    const folded = all.filter((row) => row.digestId !== null);
    const alone = all.filter((row) => row.digestId === null);
    // Only what the pace let out at once (the claims taken together at the start) went alone.
    expect(alone.length).toBeLessThan(19);
    expect(folded.length).toBeGreaterThan(1000 - 19);
    // Each digest records what it carried: its carrier, oldest first, and nothing carried twice.
    const carriers = [...new Set(folded.map((row) => row.digestId!))];
    let carried = 0;
    for (const carrierId of carriers) {
      const list = await h.store.listFolded(carrierId);
      expect(list.map((row) => row.digestId)).toEqual(list.map(() => carrierId));
      expect(list.some((row) => row.id === carrierId)).toBe(true);
      carried += list.length;
      // A folded delivery has no attempt of its own (the robot's pace counts the carrier's); the carrier has one.
      const carrier = list.find((row) => row.id === carrierId)!;
      expect(carrier.attempts).toBe(1);
      for (const row of list.filter((row) => row.id !== carrierId)) expect(row.attempts).toBe(0);
    }
    expect(carried).toBe(folded.length);
    expect(carriers.length + alone.length).toBe(h.emulator.messages.length);

    // Mentions: every @ of a folded alert is in its digest's `at` and text.
    const digests = h.emulator.messages.filter((message) => message.body.msgtype === 'markdown');
    const atMobiles = digests.flatMap((message) => message.body.at.atMobiles as string[]);
    const atUserIds = digests.flatMap((message) => message.body.at.atUserIds as string[]);
    for (const row of folded) {
      const payload = JSON.parse(row.payload) as { atMobiles: string[]; atUserIds: string[] };
      for (const mobile of payload.atMobiles) {
        expect(atMobiles).toContain(mobile);
        expect(texts).toContain(`@${mobile}`);
      }
      for (const user of payload.atUserIds) expect(atUserIds).toContain(user);
    }
    // Each entry carries its time, oldest first within a digest.
    const first = digests[0]!.body.markdown.text as string;
    const times = [...first.matchAll(/\*\*(\d\d:\d\d:\d\d)\*\*/g)].map((match) => match[1]);
    expect(times.length).toBeGreaterThan(1);
    expect([...times].sort()).toEqual(times);
  }, 60_000);

  it('a backlog arriving while the robot is busy: the turn that comes folds what waits', async () => {
    const h = await harness(kind);
    h.start();
    const ids: string[] = [];
    for (let wave = 0; wave < 5; wave++) {
      for (let n = 0; n < 60; n++) ids.push((await h.send({ content: `wave ${wave} alert ${n}` })).id);
      await h.advance(2000, 1000);
    }
    await h.advance(2 * minuteMs, 5000);
    expect(await h.pending()).toEqual([]);
    expect((await h.rows(ids)).every((row) => row.status === 'SENT')).toBe(true);
    expect(busiestMinute(h.emulator.messages)).toBeLessThanOrEqual(19);
    expect(h.emulator.rejected).toBe(0);
    const texts = received(h.emulator).join('\n');
    for (let wave = 0; wave < 5; wave++) for (let n = 0; n < 60; n++) expect(texts).toContain(`wave ${wave} alert ${n}\n`.trimEnd());
  }, 60_000);

  it('below the threshold nothing is folded: 30 alerts go one by one as today', async () => {
    const h = await harness(kind);
    const ids: string[] = [];
    for (let n = 0; n < 30; n++) ids.push((await h.send({ content: `#${n}` })).id);
    h.start();
    await h.advance(2 * minuteMs);
    const all = await h.rows(ids);
    expect(all.every((row) => row.status === 'SENT' && row.digestId === null)).toBe(true);
    expect(h.emulator.messages).toHaveLength(30);
  }, 30_000);

  it('ROBOT_DIGEST=off (no digests): a storm is paced one message at a time, nothing folded', async () => {
    const h = await harness(kind, { digest: false });
    const ids: string[] = [];
    for (let n = 0; n < 60; n++) ids.push((await h.send({ content: `#${n}` })).id);
    h.start();
    await h.settle();
    expect(h.emulator.messages).toHaveLength(19);
    const all = await h.rows(ids);
    expect(all.filter((row) => row.status === 'QUEUED')).toHaveLength(41);
    expect(all.every((row) => row.digestId === null)).toBe(true);
  }, 30_000);

  it('cancel: a cancelled delivery is never folded; a folded one is SENT and can no longer be cancelled', async () => {
    const h = await harness(kind);
    const ids: string[] = [];
    for (let n = 0; n < 100; n++) ids.push((await h.send({ content: `alert ${n}` })).id);
    const cancelled = [ids[40]!, ids[41]!, ids[99]!];
    for (const id of cancelled) await h.service.cancelDelivery(id, h.caller);
    h.start();
    await h.advance(minuteMs, 1000);
    const all = await h.rows(ids);
    for (const row of all) {
      if (cancelled.includes(row.id)) expect(row).toMatchObject({ status: 'CANCELLED', digestId: null });
      else expect(row.status).toBe('SENT');
    }
    const texts = received(h.emulator).join('\n');
    expect(texts).not.toMatch(/alert (40|41|99)\b/);
    const folded = all.find((row) => row.digestId !== null && row.digestId !== row.id)!;
    await expect(h.service.cancelDelivery(folded.id, h.caller)).rejects.toThrow(/QUEUED or RETRYING/);
  }, 30_000);

  it('idempotency: the same key gives back the folded delivery, SENT with its digest; nothing is sent again', async () => {
    const h = await harness(kind);
    const ids: string[] = [];
    for (let n = 0; n < 100; n++) ids.push((await h.send({ content: `alert ${n}` }, `key-${n}`)).id);
    h.start();
    await h.advance(minuteMs, 1000);
    const before = h.emulator.messages.length;
    const again = await h.send({ content: 'alert 50' }, 'key-50');
    expect(again.id).toBe(ids[50]);
    const row = (await h.rows([ids[50]!]))[0]!;
    expect(row.status).toBe('SENT');
    expect(row.digestId).not.toBeNull();
    await h.advance(5000);
    expect(h.emulator.messages).toHaveLength(before);
  }, 30_000);

  it('a digest that fails hands its folded deliveries back: they go in the next digest; the carrier keeps its own retry rules', async () => {
    const h = await harness(kind);
    const ids: string[] = [];
    for (let n = 0; n < 100; n++) ids.push((await h.send({ content: `alert ${n}` })).id);
    // The first answer is permanent (a keyword check, say): that carrier ends FAILED, alone.
    h.emulator.failNext({ errcode: 430102, errmsg: 'improper text' }, 1);
    h.start();
    await h.advance(2 * minuteMs, 1000);
    expect(await h.pending()).toEqual([]);
    const all = await h.rows(ids);
    const failed = all.filter((row) => row.status === 'FAILED');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ digestId: null, lastErrorCode: '430102' });
    // Nothing it had folded failed with it: every other alert is SENT and arrived.
    expect(all.filter((row) => row.status === 'SENT')).toHaveLength(99);
    const texts = received(h.emulator).join('\n');
    for (const row of all.filter((row) => row.status === 'SENT')) expect(texts).toContain(JSON.parse(row.payload).content);
    // Its folded deliveries were handed back without an attempt of their own, then carried by another digest.
    for (const row of all.filter((row) => row.digestId !== null && row.digestId !== row.id)) expect(row.attempts).toBe(0);
    // A FAILED DingTalk carrier lost its credentials like any FAILED DingTalk delivery: retry is refused for it.
    expect(h.service.canRetry(failed[0]!, h.caller)).toBe(false);
  }, 30_000);

  it('a digest that fails retryably: the carrier retries, its folded deliveries wait again and end SENT in a digest', async () => {
    const h = await harness(kind);
    const ids: string[] = [];
    for (let n = 0; n < 100; n++) ids.push((await h.send({ content: `alert ${n}` })).id);
    h.emulator.failNext({ errcode: -1, errmsg: 'system busy' }, 2);
    h.start();
    await h.advance(2 * minuteMs, 1000);
    expect(await h.pending()).toEqual([]);
    const all = await h.rows(ids);
    expect(all.every((row) => row.status === 'SENT')).toBe(true);
    const texts = received(h.emulator).join('\n');
    for (let n = 0; n < 100; n++) expect(texts).toMatch(new RegExp(`alert ${n}(?!\\d)`));
    expect(busiestMinute(h.emulator.messages)).toBeLessThanOrEqual(19);
  }, 30_000);
}, { timeout: 90_000 });

describeOnStores('alert-storm digests with two dispatchers on one database', (kind) => {
  it.skipIf(kind === 'sqlite')('two replicas folding the same storm never fold one delivery twice', async () => {
    const h = await harness(kind, { replicas: 2 });
    const ids: string[] = [];
    for (let n = 0; n < 600; n++) ids.push((await h.send({ content: `replica storm alert ${n}` })).id);
    h.start();
    // 32 claims at once over two dispatchers: 19 take the minute's slots, the others their turns in the next.
    await h.advance(2 * minuteMs, 1000);
    expect(await h.pending()).toEqual([]);
    const all: DeliveryRow[] = await h.rows(ids);
    expect(all.every((row) => row.status === 'SENT')).toBe(true);
    const texts = received(h.emulator).join('\n');
    for (let n = 0; n < 600; n++) expect(texts.match(new RegExp(`replica storm alert ${n}(?!\\d)`, 'g'))).toHaveLength(1);
    expect(busiestMinute(h.emulator.messages)).toBeLessThanOrEqual(19);
    expect(h.emulator.rejected).toBe(0);
  }, 60_000);
});
