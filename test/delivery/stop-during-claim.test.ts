import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { Channels, SendContext } from '../../src/channels/channel';
import { loadConfig } from '../../src/config';
import { sqlitePath } from '../support/gateway';
import { SqliteStore } from '../../src/db/sqlite-store';
import { Dispatcher } from '../../src/delivery/dispatcher';
import { DeliveryEvents } from '../../src/delivery/events';
import { newDeliveryId } from '../../src/delivery/service';
import { createLogger } from '../../src/logger';
import { SecretBox } from '../../src/secrets';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Claims are group-committed, so one can still be on its way to the database when stop() is called. What it claimed
 * must be sent and recorded before stop() answers, not started behind its back (and then cut off by the store closing).
 */
it('stop() during a claim waits for the attempts that claim starts: nothing is left SENDING', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-stop-claim-'));
  const config = loadConfig({ NODE_ENV: 'test', DATABASE_URL: `file:${path.join(dir, 'notify.db')}` });
  const store = SqliteStore.open(sqlitePath(config));
  cleanups.push(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const now = Date.now();
  const id = newDeliveryId(now);
  await store.insertDelivery({
    id,
    channel: 'EMAIL',
    status: 'QUEUED',
    provider: 'stub',
    recipient: 'ops@example.com',
    payload: JSON.stringify({ to: ['ops@example.com'], cc: [], bcc: [], subject: 's', text: 't' }),
    callerId: 'env:1',
    nextAttemptAt: now,
    createdAt: now,
    updatedAt: now,
  });
  // The claim takes a while to come back, as a busy commit would.
  const claimDue = store.claimDue.bind(store);
  let claimAsked = false;
  store.claimDue = async (...args) => {
    claimAsked = true;
    const claimed = await claimDue(...args);
    await sleep(100);
    return claimed;
  };
  const sends: string[] = [];
  const email = {
    channel: 'EMAIL' as const,
    provider: 'stub',
    development: true,
    async send(_message: unknown, context: SendContext) {
      await sleep(50);
      sends.push(context.deliveryId);
      return { providerMessageId: 'ok' };
    },
  };
  const dispatcher = new Dispatcher({
    store,
    channels: { EMAIL: email } as unknown as Channels,
    secretBox: new SecretBox(crypto.randomBytes(32)),
    events: new DeliveryEvents(),
    logger: createLogger({ level: 'silent', pretty: false }),
    config,
  });
  dispatcher.start();
  await sleep(20);
  expect(claimAsked).toBe(true);
  expect(await dispatcher.stop(5000)).toBe(true);
  expect(sends).toEqual([id]);
  expect(await store.getDelivery(id)).toMatchObject({ status: 'SENT', attempts: 1 });
});
