import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelError, type Channel, type Channels, type PacingRule, type SendContext, type SendResult } from '../../src/channels/channel';
import { loadConfig, type Config } from '../../src/config';
import type { ChannelName, DeliveryRow } from '../../src/db/schema';
import type { Store } from '../../src/db/store';
import { SqliteStore } from '../../src/db/sqlite-store';
import { dingTalkMuteMs as robotMuteMs } from '../../src/channels/ding-talk-robot';
import { Dispatcher } from '../../src/delivery/dispatcher';
import { DeliveryEvents } from '../../src/delivery/events';
import { prepareByChannel } from '../../src/delivery/inputs';
import { newDeliveryId } from '../../src/delivery/service';
import { createLogger } from '../../src/logger';
import { SecretBox } from '../../src/secrets';
import { eventually } from '../support/gateway';

type Behaviour = (context: SendContext, message: any) => Promise<SendResult>;

/** A channel that records every send and behaves as the test says. */
class StubChannel<C extends ChannelName> implements Channel<C> {
  readonly provider = 'stub';
  readonly development = true;
  readonly sends: { deliveryId: string; attempt: number; at: number }[] = [];
  constructor(
    readonly channel: C,
    public behaviour: Behaviour = async () => ({ providerMessageId: 'ok' }),
    readonly pacing?: PacingRule,
  ) {}
  async send(message: any, context: SendContext): Promise<SendResult> {
    this.sends.push({ deliveryId: context.deliveryId, attempt: context.attempt, at: Date.now() });
    return this.behaviour(context, message);
  }
  sendsFor(id: string) {
    return this.sends.filter((send) => send.deliveryId === id).length;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Harness {
  config: Config;
  store: SqliteStore;
  channels: { DING: StubChannel<'DING'>; EMAIL: StubChannel<'EMAIL'>; SMS: StubChannel<'SMS'> };
  dispatcher(options?: { store?: SqliteStore; random?: () => number }): Dispatcher;
  queue(channel: ChannelName, input: Record<string, unknown>, row?: { createdAt?: number }): Promise<DeliveryRow>;
  openStore(): SqliteStore;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function harness(env: Record<string, string> = {}): Harness {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-dispatcher-'));
  const databasePath = path.join(dir, 'notify.db');
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: `file:${databasePath}`,
    DISPATCH_POLL_MS: '20',
    RETRY_BASE_DELAY_MS: '20',
    RETRY_MAX_DELAY_MS: '50',
    PROVIDER_TIMEOUT_MS: '2000',
    ...env,
  });
  const stores: SqliteStore[] = [];
  const openStore = () => {
    const opened = SqliteStore.open(databasePath);
    stores.push(opened);
    return opened;
  };
  const store = openStore();
  const secretBox = new SecretBox(crypto.randomBytes(32));
  const events = new DeliveryEvents();
  const logger = createLogger({ level: 'silent', pretty: false });
  const channels = {
    // Paced as the DingTalk channel is.
    DING: new StubChannel('DING', undefined, { perWindow: config.ding.perRobotPerMinute, windowMs: 60_000, muteMs: robotMuteMs }),
    EMAIL: new StubChannel('EMAIL'),
    SMS: new StubChannel('SMS'),
  };
  const dispatchers: Dispatcher[] = [];
  cleanups.push(async () => {
    await Promise.all(dispatchers.map((dispatcher) => dispatcher.stop(3000)));
    for (const opened of stores) await opened.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    config,
    store,
    channels,
    openStore,
    dispatcher(options = {}) {
      const dispatcher = new Dispatcher({
        store: options.store ?? store,
        channels: channels as unknown as Channels,
        secretBox,
        events,
        logger,
        config,
        random: options.random,
      });
      dispatchers.push(dispatcher);
      return dispatcher;
    },
    async queue(channel, input, row = {}) {
      const prepared = prepareByChannel[channel](input);
      const now = row.createdAt ?? Date.now();
      const outcome = await store.insertDelivery({
        id: newDeliveryId(now),
        channel,
        status: 'QUEUED',
        provider: 'stub',
        recipient: prepared.recipient,
        payload: JSON.stringify(prepared.payload),
        sealedSecrets: prepared.secrets ? secretBox.seal(prepared.secrets) : null,
        callerId: 'env:1',
        nextAttemptAt: now,
        createdAt: now,
        updatedAt: now,
      });
      if (outcome.kind === 'limited') throw new Error('limited');
      return outcome.delivery;
    },
  };
}

const email = (n: number) => ({ to: [`ops${n}@example.com`], subject: `#${n}`, content: 'disk full' });
const ding = (robot = 'robot-a', n = 0) => ({ accessToken: `token-${robot}`, secret: `SEC-${robot}`, content: `alert ${n}` });

async function settled(store: SqliteStore, ids: string[], timeoutMs = 10_000): Promise<DeliveryRow[]> {
  return eventually(async () => {
    const rows = await store.getDeliveries(ids);
    return rows.length === ids.length && rows.every((row) => ['SENT', 'FAILED', 'CANCELLED'].includes(row.status)) && rows;
  }, timeoutMs);
}

describe('Dispatcher.backoff', () => {
  const config = { RETRY_BASE_DELAY_MS: '1000', RETRY_MAX_DELAY_MS: '60000' };

  it('doubles its ceiling per attempt, half fixed and half random, capped at RETRY_MAX_DELAY_MS', () => {
    const h = harness(config);
    let random = 0;
    const dispatcher = h.dispatcher({ random: () => random });
    const at = (attempt: number, r: number) => {
      random = r;
      return dispatcher.backoff(attempt);
    };
    expect([1, 2, 3, 4].map((attempt) => at(attempt, 0))).toEqual([500, 1000, 2000, 4000]);
    expect([1, 2, 3, 4].map((attempt) => at(attempt, 1))).toEqual([1000, 2000, 4000, 8000]);
    expect(at(3, 0.5)).toBe(3000);
    // The ceiling stops at the maximum: 1000 * 2^9 > 60000.
    expect(at(10, 0)).toBe(30_000);
    expect(at(10, 1)).toBe(60_000);
    expect(at(30, 1)).toBe(60_000);
    // Below the cap it never shrinks: the shortest wait of attempt n+1 is the longest of attempt n.
    for (let attempt = 1; attempt < 6; attempt++) expect(at(attempt + 1, 0)).toBe(at(attempt, 1));
  });

  it('with the default settings a delivery is retried for one to two hours of outage', () => {
    const defaults = loadConfig({ NODE_ENV: 'test' }).dispatch;
    expect(defaults).toMatchObject({ maxAttempts: 20, maxAgeMs: 86_400_000, baseDelayMs: 2000, maxDelayMs: 600_000 });
    const h = harness({ RETRY_BASE_DELAY_MS: '2000', RETRY_MAX_DELAY_MS: '600000' });
    const waits = (random: number) => {
      const dispatcher = h.dispatcher({ random: () => random });
      let total = 0;
      for (let attempt = 1; attempt < defaults.maxAttempts; attempt++) total += dispatcher.backoff(attempt);
      return total;
    };
    // 19 waits: 1–2 s, 2–4 s, … up to the 10-minute ceiling.
    expect(waits(0)).toBeGreaterThanOrEqual(58 * 60_000);
    expect(waits(1)).toBeLessThanOrEqual(2 * 3_600_000);
    expect(waits(1)).toBeLessThanOrEqual(defaults.maxAgeMs);
  });

  it('is jittered: waits for the same attempt differ and stay within [ceiling/2, ceiling]', () => {
    const dispatcher = harness(config).dispatcher();
    const waits = Array.from({ length: 200 }, () => dispatcher.backoff(4));
    expect(new Set(waits).size).toBeGreaterThan(100);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(4000);
    expect(Math.max(...waits)).toBeLessThanOrEqual(8000);
  });
});

describe('claims', () => {
  /** 100 queued emails, each taking 5–15 ms to send, for two dispatchers to share. */
  async function hundredQueued() {
    const h = harness({ DISPATCH_CONCURRENCY: '8' });
    h.channels.EMAIL.behaviour = async () => {
      await sleep(5 + Math.random() * 10);
      return {};
    };
    const ids: string[] = [];
    for (let n = 0; n < 100; n++) ids.push((await h.queue('EMAIL', email(n))).id);
    return { h, ids };
  }

  it('two dispatchers on one store never take the same delivery', async () => {
    const { h, ids } = await hundredQueued();
    const [a, b] = [h.dispatcher(), h.dispatcher()];
    const attempts = { a: 0, b: 0 };
    a.onAttempt(() => attempts.a++);
    b.onAttempt(() => attempts.b++);
    a.start();
    b.start();
    const rows = await settled(h.store, ids);
    expect(rows.every((row) => row.status === 'SENT' && row.attempts === 1)).toBe(true);
    for (const id of ids) expect(h.channels.EMAIL.sendsFor(id), id).toBe(1);
    expect(h.channels.EMAIL.sends).toHaveLength(100);
    // Both took part (observers hear of an attempt once its record is on disk, a moment after the row shows it).
    await eventually(() => attempts.a + attempts.b >= 100);
    expect(attempts.a).toBeGreaterThan(0);
    expect(attempts.b).toBeGreaterThan(0);
    expect(attempts.a + attempts.b).toBe(100);
  });

  it('two dispatchers on two connections to the same database file never take the same delivery', async () => {
    const { h, ids } = await hundredQueued();
    h.dispatcher().start();
    h.dispatcher({ store: h.openStore() }).start();
    await settled(h.store, ids);
    for (const id of ids) expect(h.channels.EMAIL.sendsFor(id), id).toBe(1);
    expect(h.channels.EMAIL.sends).toHaveLength(100);
  });

  it('a claim whose lease ran out is handed back as INTERRUPTED and taken again; the late attempt no longer decides the state', async () => {
    const h = harness();
    const delivery = await h.queue('EMAIL', email(1));
    const [stale] = await h.store.claimDue(Date.now(), 10, Date.now() - 1);
    expect(stale.status).toBe('SENDING');
    h.dispatcher().start();
    const [row] = await settled(h.store, [delivery.id]);
    expect(row.status).toBe('SENT');
    // The worker that lost its claim reports a failure afterwards: recorded, but the delivery stays SENT.
    await h.store.finishAttempt(
      delivery.id,
      { number: 1, startedAt: Date.now(), durationMs: 5, outcome: 'RETRYABLE', providerCode: 'X', providerMessage: 'late' },
      { status: 'RETRYING', nextAttemptAt: Date.now() },
      stale.claimedUntil!,
    );
    const after = await h.store.getDelivery(delivery.id);
    expect(after?.status).toBe('SENT');
    // The lapsed claim counts as an attempt of its own (its holder may have reached the provider).
    expect((await h.store.listAttempts(delivery.id)).map((attempt) => [attempt.number, attempt.outcome])).toEqual([
      [1, 'INTERRUPTED'],
      [2, 'SENT'],
      [3, 'RETRYABLE'],
    ]);
  });

  it('at start, deliveries caught mid-attempt are recorded INTERRUPTED and sent again', async () => {
    const h = harness({ RETRY_MAX_ATTEMPTS: '3' });
    const caught = await h.queue('EMAIL', email(1));
    const exhausted = await h.queue('EMAIL', email(2));
    await h.store.finishAttempt(
      exhausted.id,
      { number: 1, startedAt: Date.now(), durationMs: 1, outcome: 'RETRYABLE', providerCode: '421', providerMessage: 'busy' },
      { attempts: 1, status: 'RETRYING', nextAttemptAt: Date.now() },
    );
    await h.store.claimDue(Date.now(), 10, Date.now() + 60_000);
    // The crash: a new process opens the database.
    const released = await h.store.releaseClaims(Date.now(), 2, 'all');
    expect(released).toHaveLength(2);
    const interrupted = await h.store.getDelivery(caught.id);
    expect(interrupted).toMatchObject({ status: 'RETRYING', attempts: 1, lastErrorCode: 'INTERRUPTED', claimedUntil: null });
    // A message that keeps crashing the gateway cannot loop forever: its interruptions count as attempts.
    expect(await h.store.getDelivery(exhausted.id)).toMatchObject({ status: 'FAILED', attempts: 2, lastErrorCode: 'INTERRUPTED' });
    h.dispatcher().start();
    const [row] = await settled(h.store, [caught.id]);
    expect(row).toMatchObject({ status: 'SENT', attempts: 2, lastErrorCode: null });
    const log = await h.store.listAttempts(caught.id);
    expect(log.map((attempt) => [attempt.number, attempt.outcome])).toEqual([
      [1, 'INTERRUPTED'],
      [2, 'SENT'],
    ]);
    expect(h.channels.EMAIL.sendsFor(exhausted.id)).toBe(0);
  });
});

describe('claims left at start', () => {
  it.each([
    [false, 'all'],
    [true, 'lapsed'],
  ] as const)('a store shared with other processes (%s) hands back %s claims at start', async (shared, which) => {
    const asked: unknown[][] = [];
    const store = { shared, releaseClaims: async (...args: unknown[]) => (asked.push(args), []) } as unknown as Store;
    const config = loadConfig({ NODE_ENV: 'test', RETRY_MAX_ATTEMPTS: '7' });
    const dispatcher = new Dispatcher({
      store,
      channels: {} as Channels,
      secretBox: new SecretBox(crypto.randomBytes(32)),
      events: new DeliveryEvents(),
      logger: createLogger({ level: 'silent', pretty: false }),
      config,
      now: () => 1234,
    });
    expect(await dispatcher.release()).toBe(0);
    expect(asked).toEqual([[1234, 7, which]]);
  });
});

describe('retries', () => {
  it('retries a retryable failure with backoff, shows nextAttemptAt while RETRYING, fails after RETRY_MAX_ATTEMPTS', async () => {
    const h = harness({ RETRY_MAX_ATTEMPTS: '4', RETRY_BASE_DELAY_MS: '40', RETRY_MAX_DELAY_MS: '1000' });
    h.channels.EMAIL.behaviour = async () => {
      await sleep(3);
      throw new ChannelError('retryable', '421', '421 Service not available');
    };
    const delivery = await h.queue('EMAIL', email(1));
    const dispatcher = h.dispatcher({ random: () => 1 });
    const seen: DeliveryRow[] = [];
    dispatcher.onAttempt(({ delivery: updated }) => seen.push(updated));
    dispatcher.start();
    const [row] = await settled(h.store, [delivery.id]);
    expect(row).toMatchObject({ status: 'FAILED', attempts: 4, nextAttemptAt: null, lastErrorCode: '421', lastErrorMessage: '421 Service not available' });
    // Observers hear of an attempt once its record is on disk, a moment after other readers can see it.
    await eventually(() => seen.length === 4);
    expect(seen.map((update) => update.status)).toEqual(['RETRYING', 'RETRYING', 'RETRYING', 'FAILED']);
    const log = await h.store.listAttempts(delivery.id);
    expect(log).toHaveLength(4);
    for (const [index, attempt] of log.entries()) {
      expect(attempt).toMatchObject({ number: index + 1, outcome: 'RETRYABLE', providerCode: '421', providerMessage: '421 Service not available' });
      expect(attempt.durationMs).toBeGreaterThanOrEqual(2);
      if (index < 3) {
        // With random = 1 the wait is the full ceiling: 40, 80, 160 ms after the attempt ended.
        const ended = attempt.startedAt + attempt.durationMs;
        expect(seen[index].nextAttemptAt! - ended).toBe(40 * 2 ** index);
        expect(log[index + 1].startedAt).toBeGreaterThanOrEqual(seen[index].nextAttemptAt!);
      }
    }
    expect(h.channels.EMAIL.sends).toHaveLength(4);
  });

  it('fails once the next try would pass RETRY_MAX_AGE_SECONDS', async () => {
    const h = harness({ RETRY_MAX_ATTEMPTS: '100', RETRY_MAX_AGE_SECONDS: '2' });
    h.channels.EMAIL.behaviour = async () => {
      throw new ChannelError('retryable', 'ECONNECTION', 'connection refused');
    };
    const old = await h.queue('EMAIL', email(1), { createdAt: Date.now() - 2500 });
    const young = await h.queue('EMAIL', email(2));
    h.dispatcher().start();
    const [row] = await settled(h.store, [old.id]);
    expect(row).toMatchObject({ status: 'FAILED', attempts: 1, lastErrorCode: 'ECONNECTION' });
    const youngRow = await eventually(async () => {
      const current = await h.store.getDelivery(young.id);
      return current!.attempts >= 2 && current;
    });
    expect(['RETRYING', 'SENDING']).toContain(youngRow.status);
  });

  it('a permanent failure ends FAILED at once and erases the sealed secrets', async () => {
    const h = harness();
    h.channels.DING.behaviour = async () => {
      throw new ChannelError('permanent', '310000', 'sign not match');
    };
    const delivery = await h.queue('DING', ding());
    expect(delivery.sealedSecrets).not.toBeNull();
    h.dispatcher().start();
    const [row] = await settled(h.store, [delivery.id]);
    expect(row).toMatchObject({ status: 'FAILED', attempts: 1, lastErrorCode: '310000', lastErrorMessage: 'sign not match', sealedSecrets: null });
    expect((await h.store.listAttempts(delivery.id)).map((attempt) => attempt.outcome)).toEqual(['PERMANENT']);
  });

  it("a provider's rate limit on an SMS code is final: FAILED at once", async () => {
    const h = harness();
    h.channels.SMS.behaviour = async () => {
      throw new ChannelError('rate_limited', 'isv.BUSINESS_LIMIT_CONTROL', 'limit', 60_000);
    };
    const delivery = await h.queue('SMS', { mobile: '+8613800138000', content: '123456' });
    h.dispatcher().start();
    const [row] = await settled(h.store, [delivery.id]);
    expect(row).toMatchObject({ status: 'FAILED', attempts: 1, lastErrorCode: 'isv.BUSINESS_LIMIT_CONTROL' });
    expect(h.channels.SMS.sends).toHaveLength(1);
  });

  it('at the deadline the attempt is aborted; a channel that ignores the abort is given up on as a retryable TIMEOUT', async () => {
    const h = harness({ PROVIDER_TIMEOUT_MS: '1', CLAIM_LEASE_MS: '5000', RETRY_BASE_DELAY_MS: '60000', RETRY_MAX_DELAY_MS: '60000' });
    // Email honours the signal, as got and nodemailer do; SMS ignores it.
    h.channels.EMAIL.behaviour = (context) =>
      new Promise((_resolve, reject) =>
        context.signal.addEventListener('abort', () => reject(new ChannelError('retryable', 'EABORT', 'abandoned'))),
      );
    h.channels.SMS.behaviour = () => new Promise(() => {});
    const honours = await h.queue('EMAIL', email(1));
    const ignores = await h.queue('SMS', { mobile: '+8613800138000', content: '123456' });
    const started = Date.now();
    h.dispatcher().start();
    const rows = await eventually(async () => {
      const current = await h.store.getDeliveries([honours.id, ignores.id]);
      return current.every((row) => row.attempts === 1) && current;
    });
    for (const row of rows) {
      expect(row.status).toBe('RETRYING');
      expect(row.nextAttemptAt).toBeGreaterThanOrEqual(started + 30_000);
    }
    const [aborted] = await h.store.listAttempts(honours.id);
    expect(aborted).toMatchObject({ outcome: 'RETRYABLE', providerCode: 'EABORT' });
    expect(aborted.durationMs).toBeGreaterThanOrEqual(1000);
    expect(aborted.durationMs).toBeLessThan(2500);
    const [givenUp] = await h.store.listAttempts(ignores.id);
    expect(givenUp).toMatchObject({ outcome: 'RETRYABLE', providerCode: 'TIMEOUT' });
    expect(givenUp.durationMs).toBeGreaterThanOrEqual(3000);
  });

  it('an answer that arrives while the event loop was busy past the deadline still counts', async () => {
    const h = harness({ PROVIDER_TIMEOUT_MS: '1', CLAIM_LEASE_MS: '5000' });
    h.channels.EMAIL.behaviour = (context) =>
      new Promise((resolve, reject) => {
        context.signal.addEventListener('abort', () => reject(new ChannelError('retryable', 'EABORT', 'abandoned')));
        // The reply is "received" at 900 ms, but the loop is blocked until after the 1001 ms deadline.
        setTimeout(() => {
          const until = Date.now() + 300;
          while (Date.now() < until);
        }, 850);
        setTimeout(() => setImmediate(() => resolve({ providerMessageId: 'late-but-sent' })), 900);
      });
    const delivery = await h.queue('EMAIL', email(1));
    h.dispatcher().start();
    const [row] = await settled(h.store, [delivery.id]);
    expect(row).toMatchObject({ status: 'SENT', attempts: 1, providerMessageId: 'late-but-sent' });
  });
});

describe('DingTalk pacing', () => {
  it('sends at most DINGTALK_ROBOT_PER_MINUTE per robot even when a batch is claimed at once; the rest wait QUEUED', async () => {
    const h = harness({ DINGTALK_ROBOT_PER_MINUTE: '5', DISPATCH_CONCURRENCY: '16' });
    h.channels.DING.behaviour = async () => {
      await sleep(20);
      return {};
    };
    const ids: string[] = [];
    for (let n = 0; n < 12; n++) ids.push((await h.queue('DING', ding('robot-a', n))).id);
    const other = await h.queue('DING', ding('robot-b'));
    const before = Date.now();
    h.dispatcher().start();
    await eventually(async () => (await h.store.getDelivery(other.id))?.status === 'SENT');
    await eventually(async () => {
      const rows = await h.store.getDeliveries(ids);
      return rows.filter((row) => row.status === 'SENT').length === 5 && rows.filter((row) => row.status === 'QUEUED').length === 7;
    });
    await sleep(200);
    const rows = await h.store.getDeliveries(ids);
    expect(rows.filter((row) => row.status === 'SENT')).toHaveLength(5);
    const waiting = rows.filter((row) => row.status === 'QUEUED');
    expect(waiting).toHaveLength(7);
    for (const row of waiting) {
      expect(row.attempts).toBe(0);
      expect(row.nextAttemptAt).toBeGreaterThanOrEqual(before + 60_000);
      // Turns are spread over the next minutes: 5 in the next one, 2 in the one after.
      expect(row.nextAttemptAt).toBeLessThanOrEqual(Date.now() + 2 * 61_000);
    }
    expect(h.channels.DING.sends).toHaveLength(6);
  });

  it('after "send too fast" the robot rests for the mute: that delivery and the others wait it out', async () => {
    const h = harness({ RETRY_MAX_DELAY_MS: '1000' });
    h.channels.DING.behaviour = async () => {
      throw new ChannelError('rate_limited', '130101', 'send too fast, exceed 20 times per minute', robotMuteMs);
    };
    const first = await h.queue('DING', ding('robot-a', 1));
    const dispatcher = h.dispatcher();
    dispatcher.start();
    const limited = await eventually(async () => {
      const row = await h.store.getDelivery(first.id);
      return row!.attempts === 1 && row;
    });
    expect(limited).toMatchObject({ status: 'RETRYING', lastErrorCode: '130101' });
    const attempt = (await h.store.listAttempts(first.id))[0];
    expect(attempt.outcome).toBe('RATE_LIMITED');
    expect(limited.nextAttemptAt).toBeGreaterThanOrEqual(attempt.startedAt + attempt.durationMs + robotMuteMs);
    const second = await h.queue('DING', ding('robot-a', 2));
    dispatcher.kick();
    const waiting = await eventually(async () => {
      const row = await h.store.getDelivery(second.id);
      return row?.status === 'QUEUED' && row.nextAttemptAt! > Date.now() && row;
    });
    expect(waiting.nextAttemptAt).toBe(attempt.startedAt + robotMuteMs);
    expect(waiting.attempts).toBe(0);
    expect(h.channels.DING.sends).toHaveLength(1);
  });
});

describe('stop', () => {
  it('stops claiming and waits for the attempts under way', async () => {
    const h = harness({ DISPATCH_CONCURRENCY: '3' });
    h.channels.EMAIL.behaviour = async () => {
      await sleep(300);
      return {};
    };
    const ids: string[] = [];
    for (let n = 0; n < 6; n++) ids.push((await h.queue('EMAIL', email(n))).id);
    const dispatcher = h.dispatcher();
    dispatcher.start();
    await eventually(() => dispatcher.inFlightCount === 3);
    expect(await dispatcher.stop(5000)).toBe(true);
    const rows = await h.store.getDeliveries(ids);
    expect(rows.filter((row) => row.status === 'SENT')).toHaveLength(3);
    expect(rows.filter((row) => row.status === 'QUEUED')).toHaveLength(3);
    expect(h.channels.EMAIL.sends).toHaveLength(3);
  });

  it('answers false when the deadline passes first', async () => {
    const h = harness();
    h.channels.EMAIL.behaviour = async () => {
      await sleep(1000);
      return {};
    };
    await h.queue('EMAIL', email(1));
    const dispatcher = h.dispatcher();
    dispatcher.start();
    await eventually(() => dispatcher.inFlightCount === 1);
    expect(await dispatcher.stop(50)).toBe(false);
  });
});
