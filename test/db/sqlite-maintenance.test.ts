import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Retention } from '../../src/operations/retention';
import type { SqliteMaintenance } from '../../src/db/sqlite-maintenance';
import type { SqliteStore } from '../../src/db/sqlite-store';
import type { WriteTurn } from '../../src/db/write-turn';
import { insertBareDeliveries } from '../support/db';
import { startGateway, type TestGateway } from '../support/gateway';
import { deliveryRow } from '../support/stores';

const dayMs = 86_400_000;

/** The parts of the store these tests reach into: the turn it shares with the pass's thread, and the thread. */
interface StoreInsides {
  writeTurn: WriteTurn;
  turnHandedBack(): void;
  retentionPass?: { maintenance?: Promise<SqliteMaintenance> };
}
const insides = (store: SqliteStore) => store as unknown as StoreInsides;

const oldRows = (count: number) =>
  Array.from({ length: count }, (_, n) => ({ id: `dlv_old${String(n).padStart(7, '0')}`, channel: 'EMAIL' as const, status: 'SENT' as const, createdAt: Date.now() - 100 * dayMs + n }));

const changesOf = (store: SqliteStore) => (store.db.$client.prepare('select total_changes() as n').get() as { n: number }).n;
const present = (store: SqliteStore, id: string) => store.db.$client.prepare('select 1 from deliveries where id = ?').get(id) !== undefined;

/**
 * The gateway's retention pass over its store, paced as when nobody calls (a rest as long as each step, not ten times):
 * the pacing under load is retention.test.ts's to prove, and at ten times 20,000 rows took 65 s on a loaded 2-core machine.
 */
const quickPass = (gateway: TestGateway) =>
  new Retention({ store: gateway.store, config: gateway.config, logger: gateway.logger, activity: { quietFor: () => true } }).runPass();

describe('retention pass on its own thread [sqlite]', { timeout: 60_000 }, () => {
  let gateway: TestGateway | undefined;
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  it('purges on a connection of its own while sends commit on the event loop, and hands checkpoints back after', async () => {
    gateway = await startGateway({ noDispatch: true });
    const { store } = gateway;
    await insertBareDeliveries(gateway, oldRows(20_000));
    const changesBefore = changesOf(store);
    const pass = quickPass(gateway);
    const sent: string[] = [];
    let passOver = false;
    void pass.finally(() => (passOver = true));
    while (!passOver || sent.length < 20) {
      const { body } = await gateway.graphql(`mutation { sendEmail(input: { to: ["ops@example.com"], subject: "disk", content: "97%", wait: false }) { ... on Delivery { id } } }`);
      sent.push(body.data.sendEmail.id);
    }
    expect(await pass).toMatchObject({ ran: true, purged: 20_000 });
    for (const id of sent) expect(present(store, id)).toBe(true);
    expect((store.db.$client.prepare('select count(*) as n from deliveries').get() as { n: number }).n).toBe(sent.length);
    // SQLite counts the rows each connection changed: this one wrote the sends (and their tokens' last use), not the
    // 20,000 deletions, which the pass's own connection made.
    expect(changesOf(store) - changesBefore).toBeLessThan(sent.length * 3 + 10);
    // The pass's thread did the checkpoints while it ran (the event loop's connection none); now this one does again.
    expect(store.db.$client.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    expect(insides(store).retentionPass).toBeUndefined();
    // The WAL the pass grew (its thread's checkpoints let it start over, but not shrink) is cut back to 16 MiB once
    // the event loop's connection next starts it over: it does not stay at its peak.
    for (let n = 0; n < 1200 && fs.statSync(`${store.db.$client.name}-wal`).size > 16 * 1024 * 1024; n++) {
      await gateway.graphql(`mutation { sendEmail(input: { to: ["ops@example.com"], subject: "disk", content: "97%", wait: false }) { ... on Delivery { id } } }`);
    }
    expect(fs.statSync(`${store.db.$client.name}-wal`).size).toBeLessThanOrEqual(16 * 1024 * 1024);
  });

  it('a write asked for while the thread holds the turn waits, without blocking the event loop, and commits when it is handed back', async () => {
    gateway = await startGateway({ noDispatch: true });
    const store = gateway.store;
    const turn = insides(store).writeTurn;
    await store.exclusively('retention', async () => {
      // As the pass's thread takes the turn for a batch.
      turn.take();
      const row = deliveryRow();
      const insert = store.insertDelivery(row);
      let timerRan = false;
      await new Promise<void>((resolve) => setTimeout(() => resolve(void (timerRan = true)), 30));
      expect(timerRan).toBe(true);
      expect(present(store, row.id)).toBe(false);
      // As the thread hands it back: it tells the event loop, which was waiting, and the write commits.
      expect(turn.handBack()).toBe(true);
      insides(store).turnHandedBack();
      expect(await insert).toMatchObject({ kind: 'created' });
      expect(present(store, row.id)).toBe(true);
    });
  });

  it('a thread that dies in the middle fails that pass, never the sends; the next pass finishes the purge', async () => {
    gateway = await startGateway({ noDispatch: true });
    const { store } = gateway;
    await insertBareDeliveries(gateway, oldRows(20_000));
    const pass = quickPass(gateway);
    let maintenance: Promise<SqliteMaintenance> | undefined;
    while (!(maintenance = insides(store).retentionPass?.maintenance)) await new Promise((resolve) => setTimeout(resolve, 5));
    const failed = expect(pass).rejects.toThrow(/maintenance thread stopped/);
    await ((await maintenance) as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    const row = deliveryRow();
    expect(await store.insertDelivery(row)).toMatchObject({ kind: 'created' });
    await failed;
    expect(present(store, row.id)).toBe(true);
    const next = await quickPass(gateway);
    expect((store.db.$client.prepare("select count(*) as n from deliveries where id like 'dlv_old%'").get() as { n: number }).n).toBe(0);
    expect(next.purged).toBeGreaterThan(0);
    expect(present(store, row.id)).toBe(true);
  });
});
