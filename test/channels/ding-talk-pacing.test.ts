import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fullScopes, type Caller } from '../../src/auth';
import type { Channels } from '../../src/channels/channel';
import { DingTalkRobotChannel } from '../../src/channels/ding-talk-robot';
import { loadConfig } from '../../src/config';
import { SqliteStore } from '../../src/db/sqlite-store';
import { Dispatcher } from '../../src/delivery/dispatcher';
import { DeliveryEvents } from '../../src/delivery/events';
import { DeliveryService } from '../../src/delivery/service';
import { createLogger } from '../../src/logger';
import { SecretBox } from '../../src/secrets';
import { busiestMinute, startDingTalkEmulator, type DingTalkEmulator } from '../peers/ding-talk-emulator';
import { deliveryFields, eventually, sqlitePath, startGateway } from '../support/gateway';

// DingTalk takes 20 messages a minute per robot and mutes it for 10 minutes past that. The gateway paces each robot
// below the limit so a storm arrives late rather than lost; these tests count what the emulator actually received.

const minuteMs = 60_000;
const newRobot = () => ({
  accessToken: crypto.randomBytes(32).toString('hex'),
  secret: `SEC${crypto.randomBytes(32).toString('hex')}`,
});

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sendDing = `mutation($input: SendDingInput!) {
  sendDing(input: $input) { __typename ... on Delivery { ${deliveryFields} } ... on Error { message } }
}`;

describe('per-robot pacing through the gateway (real clock)', () => {
  it.each([
    ['the default 19', {}, 19],
    ['DINGTALK_ROBOT_PER_MINUTE=5, below DISPATCH_CONCURRENCY', { DINGTALK_ROBOT_PER_MINUTE: '5' }, 5],
  ] as const)('30 sends at once to one robot with concurrency 16: %s reach DingTalk, the rest stay QUEUED', async (_label, env, limit) => {
    const robot = newRobot();
    const emulator = await startDingTalkEmulator({ robots: { [robot.accessToken]: robot.secret } });
    cleanups.push(() => emulator.close());
    const gateway = await startGateway({
      // Pacing alone: digests (on by default) would fold the waiting ones; test/digest/ covers them.
      env: { DINGTALK_BASE_URL: emulator.url, DISPATCH_CONCURRENCY: '16', ROBOT_DIGEST: 'off', ...env },
    });
    cleanups.push(() => gateway.close());

    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, n) => gateway.graphql(sendDing, { input: { ...robot, content: `告警 #${n}` } })),
    );
    const deliveries = answers.map(({ body }) => body.data.sendDing);
    expect(deliveries.every((delivery) => delivery.__typename === 'Delivery')).toBe(true);

    // Let everything that may go out go out.
    await eventually(() => gateway.app.dispatcher.inFlightCount === 0 && emulator.messages.length >= limit);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(emulator.messages).toHaveLength(limit);
    expect(emulator.rejected).toBe(0);
    expect(emulator.mutedUntil(robot.accessToken)).toBeUndefined();

    const rows = await Promise.all(deliveries.map((delivery) => gateway.store.getDelivery(delivery.id)));
    const sent = rows.filter((row) => row!.status === 'SENT');
    const waiting = rows.filter((row) => row!.status === 'QUEUED');
    expect(sent).toHaveLength(limit);
    expect(waiting).toHaveLength(30 - limit);
    // Each waiting delivery was not attempted and is due about a minute after the first sends (the dispatcher
    // checks the window again when it is due, so a few ms early costs nothing).
    const attempts = await Promise.all(deliveries.map((delivery) => gateway.store.listAttempts(delivery.id)));
    const starts = attempts
      .flat()
      .map((attempt) => attempt.startedAt)
      .sort((a, b) => a - b);
    expect(starts).toHaveLength(limit);
    for (const row of waiting) {
      expect(row!.attempts).toBe(0);
      expect(row!.nextAttemptAt).toBeGreaterThanOrEqual(starts[0] + minuteMs - 1000);
    }
  });
});

/** The gateway's own parts on a clock the test moves, talking to the emulator on the same clock. */
async function storm(options: { perMinute?: number } = {}) {
  let clock = Date.now();
  const now = () => clock;
  const robot = newRobot();
  const emulator = await startDingTalkEmulator({ robots: { [robot.accessToken]: robot.secret }, now });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-ding-pacing-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: `file:${path.join(dir, 'notify.db')}`,
    DISPATCH_POLL_MS: '10',
    DISPATCH_CONCURRENCY: '16',
    RETRY_BASE_DELAY_MS: '1000',
    RETRY_MAX_DELAY_MS: '5000',
    PROVIDER_TIMEOUT_MS: '2000',
    ...(options.perMinute ? { DINGTALK_ROBOT_PER_MINUTE: String(options.perMinute) } : {}),
  });
  const store = SqliteStore.open(sqlitePath(config));
  // Counts each time a delivery is sent back to wait for its robot's turn.
  const deferrals = new Map<string, number>();
  const reserve = store.reservePacingSlot.bind(store);
  store.reservePacingSlot = async (request, decide) => {
    const outcome = await reserve(request, decide);
    if (!outcome.reserved) deferrals.set(request.deliveryId, (deferrals.get(request.deliveryId) ?? 0) + 1);
    return outcome;
  };
  const secretBox = new SecretBox(crypto.randomBytes(32));
  const events = new DeliveryEvents();
  const logger = createLogger({ level: 'silent', pretty: false });
  const ding = new DingTalkRobotChannel({ baseUrl: emulator.url, timeoutMs: 2000, perMinute: config.ding.perRobotPerMinute, now });
  const channels = { DING: ding } as unknown as Channels;
  const dispatcher = new Dispatcher({ store, channels, secretBox, events, logger, config, now, random: () => 0.5 });
  const service = new DeliveryService({ store, channels, dispatcher, events, secretBox, config, now });
  const caller: Caller = { id: 'env:1', name: 'test', scopes: fullScopes };
  cleanups.push(async () => {
    await dispatcher.stop(3000);
    await ding.close();
    await store.close();
    await emulator.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const pending = () =>
    store.db.$client
      .prepare(`select status, next_attempt_at as due from deliveries where status in ('QUEUED', 'RETRYING', 'SENDING')`)
      .all() as { status: string; due: number }[];
  /** Waits until nothing is under way and nothing is due at the current (fake) time. */
  const settle = () =>
    eventually(() => dispatcher.inFlightCount === 0 && pending().every((row) => row.status !== 'SENDING' && row.due > clock));

  return {
    robot,
    emulator,
    store,
    deferrals,
    dispatcher,
    pending,
    settle,
    send: (content: string) => service.send('DING', { ...robot, content }, caller, { wait: false }),
    get clock() {
      return clock;
    },
    /** Moves the clock forward in steps, letting the dispatcher catch up after each. */
    async advance(ms: number, stepMs = 5000) {
      for (let moved = 0; moved < ms; moved += stepMs) {
        clock += Math.min(stepMs, ms - moved);
        await settle();
      }
    },
  };
}

describe('per-robot pacing over time (clock moved by the test)', () => {
  it('delivers a storm of 30 late but whole: never more than 19 in any minute, never refused or muted', async () => {
    const s = await storm();
    const ids: string[] = [];
    for (let n = 0; n < 30; n++) ids.push((await s.send(`告警 #${n}`)).id);
    s.dispatcher.start();
    await s.settle();
    expect(s.emulator.messages).toHaveLength(19);

    await s.advance(3 * minuteMs);
    expect(s.pending()).toEqual([]);
    const rows = await Promise.all(ids.map((id) => s.store.getDelivery(id)));
    expect(rows.every((row) => row!.status === 'SENT' && row!.attempts === 1)).toBe(true);
    expect(s.emulator.messages).toHaveLength(30);
    expect(new Set(s.emulator.messages.map((message) => message.body.text.content)).size).toBe(30);
    expect(s.emulator.rejected).toBe(0);
    expect(busiestMinute(s.emulator.messages)).toBeLessThanOrEqual(19);
  });

  it('gives each waiting delivery its own turn: waiting costs a bounded number of wake-ups, not one per freed slot', async () => {
    const s = await storm({ perMinute: 10 });
    for (let n = 0; n < 40; n++) await s.send(`#${n}`);
    s.dispatcher.start();
    await s.advance(5 * minuteMs);
    expect(s.pending()).toEqual([]);
    expect(s.emulator.messages).toHaveLength(40);
    expect(busiestMinute(s.emulator.messages)).toBeLessThanOrEqual(10);
    // Sent back once to wait, plus at most once more when the clock step overshoots an earlier turn.
    expect(s.deferrals.size).toBe(30);
    expect(Math.max(...s.deferrals.values())).toBeLessThanOrEqual(2);
  });

  it('keeps to DINGTALK_ROBOT_PER_MINUTE while a storm keeps arriving', async () => {
    const s = await storm({ perMinute: 10 });
    s.dispatcher.start();
    for (let wave = 0; wave < 6; wave++) {
      for (let n = 0; n < 7; n++) await s.send(`wave ${wave} #${n}`);
      await s.advance(20_000);
    }
    await s.advance(3 * minuteMs);
    expect(s.emulator.messages).toHaveLength(42);
    expect(s.emulator.rejected).toBe(0);
    expect(busiestMinute(s.emulator.messages)).toBeLessThanOrEqual(10);
  });

  it('after "send too fast" the robot rests its 10-minute mute, then everything is delivered', async () => {
    const s = await storm();
    s.emulator.failNext({ errcode: 130101, errmsg: 'send too fast, exceed 20 times per minute' });
    const first = await s.send('first');
    s.dispatcher.start();
    await s.settle();
    const limitedAt = s.clock;
    const limited = (await s.store.getDelivery(first.id))!;
    expect(limited).toMatchObject({ status: 'RETRYING', attempts: 1, lastErrorCode: '130101' });
    expect(limited.nextAttemptAt).toBeGreaterThanOrEqual(limitedAt + 10 * minuteMs);

    const others = [];
    for (let n = 0; n < 5; n++) others.push((await s.send(`held #${n}`)).id);
    await s.advance(9 * minuteMs, 30_000);
    // Nothing reached DingTalk during the mute: only the refused request.
    expect(s.emulator.requests).toHaveLength(1);
    for (const id of others) expect((await s.store.getDelivery(id))!.status).toBe('QUEUED');

    await s.advance(2 * minuteMs, 30_000);
    expect(s.pending()).toEqual([]);
    expect((await s.store.getDelivery(first.id))!).toMatchObject({ status: 'SENT', attempts: 2 });
    for (const id of others) expect((await s.store.getDelivery(id))!).toMatchObject({ status: 'SENT', attempts: 1 });
    expect(s.emulator.messages.map((message) => message.body.text.content).sort()).toEqual(
      ['first', ...Array.from({ length: 5 }, (_, n) => `held #${n}`)].sort(),
    );
    expect(Math.min(...s.emulator.messages.map((message) => message.receivedAt))).toBeGreaterThanOrEqual(limitedAt + 10 * minuteMs);
  });
});
