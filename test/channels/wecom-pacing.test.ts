import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fullScopes, type Caller } from '../../src/auth';
import type { Channels } from '../../src/channels/channel';
import { WeComRobotChannel } from '../../src/channels/wecom-robot';
import { loadConfig } from '../../src/config';
import { SqliteStore } from '../../src/db/sqlite-store';
import { Dispatcher } from '../../src/delivery/dispatcher';
import { DeliveryEvents } from '../../src/delivery/events';
import { DeliveryService } from '../../src/delivery/service';
import { createLogger } from '../../src/logger';
import { SecretBox } from '../../src/secrets';
import { busiestMinute, startWeComEmulator } from '../peers/wecom-emulator';
import { eventually, sqlitePath } from '../support/gateway';

// WeCom takes 20 messages a minute per robot and answers 45009 past that. The gateway paces each robot below the
// limit so a storm arrives late rather than refused; these tests count what the emulator actually received, on a clock
// the test moves (the gateway's parts and the emulator share it).

const minuteMs = 60_000;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function storm(options: { perMinute?: number } = {}) {
  let clock = Date.now();
  const now = () => clock;
  const key = crypto.randomUUID();
  const emulator = await startWeComEmulator({ keys: [key], now });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-wecom-pacing-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: `file:${path.join(dir, 'notify.db')}`,
    DISPATCH_POLL_MS: '10',
    DISPATCH_CONCURRENCY: '16',
    RETRY_BASE_DELAY_MS: '1000',
    RETRY_MAX_DELAY_MS: '5000',
    PROVIDER_TIMEOUT_MS: '2000',
    ...(options.perMinute ? { WECOM_ROBOT_PER_MINUTE: String(options.perMinute) } : {}),
  });
  const store = SqliteStore.open(sqlitePath(config));
  const secretBox = new SecretBox(crypto.randomBytes(32));
  const events = new DeliveryEvents();
  const logger = createLogger({ level: 'silent', pretty: false });
  const wecom = new WeComRobotChannel({ baseUrl: emulator.url, timeoutMs: 2000, perMinute: config.wecom.perRobotPerMinute });
  const channels = { WECOM: wecom } as unknown as Channels;
  const dispatcher = new Dispatcher({ store, channels, secretBox, events, logger, config, now, random: () => 0.5 });
  const service = new DeliveryService({ store, channels, dispatcher, events, secretBox, config, now });
  const caller: Caller = { id: 'env:1', name: 'test', scopes: fullScopes };
  cleanups.push(async () => {
    await dispatcher.stop(3000);
    await wecom.close();
    await store.close();
    await emulator.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const pending = () =>
    store.db.$client
      .prepare(`select status, next_attempt_at as due from deliveries where status in ('QUEUED', 'RETRYING', 'SENDING')`)
      .all() as { status: string; due: number }[];
  const settle = () =>
    eventually(() => dispatcher.inFlightCount === 0 && pending().every((row) => row.status !== 'SENDING' && row.due > clock));

  return {
    key,
    emulator,
    store,
    dispatcher,
    pending,
    settle,
    send: (content: string) => service.send('WECOM', { key, content }, caller, { wait: false }),
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

describe('WeCom per-robot pacing over time (clock moved by the test)', () => {
  it('delivers 25 sent at once whole and late: never more than 19 in any minute, never a 45009', async () => {
    const s = await storm();
    const ids: string[] = [];
    for (let n = 0; n < 25; n++) ids.push((await s.send(`告警 #${n}`)).id);
    s.dispatcher.start();
    await s.settle();
    expect(s.emulator.messages).toHaveLength(19);

    await s.advance(2 * minuteMs);
    expect(s.pending()).toEqual([]);
    const rows = await Promise.all(ids.map((id) => s.store.getDelivery(id)));
    expect(rows.every((row) => row!.status === 'SENT' && row!.attempts === 1)).toBe(true);
    expect(new Set(s.emulator.messages.map((message) => message.body.text.content)).size).toBe(25);
    expect(s.emulator.rejected).toBe(0);
    expect(s.emulator.requests.some((request) => request.errcode === 45009)).toBe(false);
    expect(busiestMinute(s.emulator.messages)).toBeLessThanOrEqual(19);
    expect(s.emulator.busiestMinute).toBeLessThanOrEqual(19);
  });

  it('keeps to WECOM_ROBOT_PER_MINUTE while a storm keeps arriving', async () => {
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

  it('after 45009 the robot rests a minute, then everything is delivered', async () => {
    const s = await storm();
    s.emulator.failNext({ errcode: 45009, errmsg: 'api freq out of limit' });
    const first = await s.send('first');
    s.dispatcher.start();
    await s.settle();
    const limitedAt = s.clock;
    const limited = (await s.store.getDelivery(first.id))!;
    expect(limited).toMatchObject({ status: 'RETRYING', attempts: 1, lastErrorCode: '45009' });
    expect(limited.nextAttemptAt).toBeGreaterThanOrEqual(limitedAt + minuteMs);

    const others = [];
    for (let n = 0; n < 5; n++) others.push((await s.send(`held #${n}`)).id);
    await s.advance(50_000);
    expect(s.emulator.requests).toHaveLength(1);
    for (const id of others) expect((await s.store.getDelivery(id))!.status).toBe('QUEUED');

    await s.advance(minuteMs);
    expect(s.pending()).toEqual([]);
    expect((await s.store.getDelivery(first.id))!).toMatchObject({ status: 'SENT', attempts: 2 });
    for (const id of others) expect((await s.store.getDelivery(id))!).toMatchObject({ status: 'SENT', attempts: 1 });
    expect(Math.min(...s.emulator.messages.map((message) => message.receivedAt))).toBeGreaterThanOrEqual(limitedAt + minuteMs);
  });
});
