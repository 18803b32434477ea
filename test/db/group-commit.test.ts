import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { NewDeliveryRow } from '../../src/db/schema';
import { SqliteStore } from '../../src/db/sqlite-store';
import type { RecipientLimit } from '../../src/db/store';

/**
 * Group commit: the writes of one event-loop turn share one transaction, each in a savepoint, and every caller hears
 * back only after the COMMIT. What is checked here is what a caller and another connection see.
 */
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function openStore() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-group-commit-'));
  const file = path.join(dir, 'notify.db');
  const store = SqliteStore.open(file);
  // A second connection, as another process would read the file: it only sees committed rows.
  const reader = new Database(file, { readonly: true });
  cleanups.push(async () => {
    reader.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const committedIds = () => (reader.prepare('select id from deliveries order by id').all() as { id: string }[]).map((row) => row.id);
  return { store, file, committedIds };
}

let serial = 0;
function row(fields: Partial<NewDeliveryRow> = {}): NewDeliveryRow {
  serial += 1;
  const now = Date.now();
  return {
    id: `dlv_${now.toString(16).padStart(12, '0')}${serial.toString(16).padStart(16, '0')}`,
    channel: 'EMAIL',
    status: 'QUEUED',
    provider: 'smtp',
    recipient: 'ops@example.com',
    payload: '{"to":["ops@example.com"]}',
    callerId: 'env:1',
    nextAttemptAt: now,
    createdAt: now,
    updatedAt: now,
    ...fields,
  };
}

describe('group commit', () => {
  it('20 concurrent inserts: one transaction, and each caller is answered only once all 20 are committed', async () => {
    const { store, committedIds } = openStore();
    const before = store.commits;
    const rows = Array.from({ length: 20 }, () => row());
    const seenAtAnswer: number[] = [];
    const answers = rows.map((candidate) =>
      store.insertDelivery(candidate).then((outcome) => {
        seenAtAnswer.push(committedIds().length);
        return outcome;
      }),
    );
    // Nothing is committed (nor answered) yet: the batch commits at the end of this turn.
    expect(committedIds()).toEqual([]);
    const outcomes = await Promise.all(answers);
    expect(outcomes.map((outcome) => outcome.kind)).toEqual(Array(20).fill('created'));
    expect(outcomes.map((outcome) => outcome.kind === 'created' && outcome.delivery.id)).toEqual(rows.map((candidate) => candidate.id));
    expect(seenAtAnswer).toEqual(Array(20).fill(20));
    expect(committedIds()).toEqual(rows.map((candidate) => candidate.id).sort());
    expect(store.commits - before).toBe(1);
  });

  it('a write that fails is undone alone: the others in its transaction are committed and answered', async () => {
    const { store, committedIds } = openStore();
    const first = row();
    const rows = [first, row(), { ...row(), id: first.id }, row()];
    const settled = await Promise.allSettled(rows.map((candidate) => store.insertDelivery(candidate)));
    expect(settled.map((result) => result.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(String((settled[2] as PromiseRejectedResult).reason)).toMatch(/UNIQUE constraint failed: deliveries\.id/);
    expect(committedIds()).toEqual([rows[0], rows[1], rows[3]].map((candidate) => candidate.id).sort());
  });

  it('one idempotency key raced 10 times in one transaction: one delivery, every caller gets it', async () => {
    const { store, committedIds } = openStore();
    const before = store.commits;
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, () => store.insertDelivery(row({ idempotencyKey: 'same-key', requestHash: 'h' }))),
    );
    expect(store.commits - before).toBe(1);
    expect(outcomes.filter((outcome) => outcome.kind === 'created')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome.kind === 'existing')).toHaveLength(9);
    const ids = new Set(outcomes.map((outcome) => (outcome.kind === 'limited' ? undefined : outcome.delivery.id)));
    expect(ids.size).toBe(1);
    expect(committedIds()).toEqual([...ids]);
  });

  it('a per-number limit of 3 raced 10 times in one transaction: exactly 3 recorded, 7 refused', async () => {
    const { store, committedIds } = openStore();
    const limits: RecipientLimit[] = [{ windowMs: 60_000, max: 3, label: '3 a minute' }];
    const sms = () => row({ channel: 'SMS', provider: 'log', recipient: '+8613800138000', payload: '{}' });
    const other = row({ channel: 'SMS', provider: 'log', recipient: '+8613900139000', payload: '{}' });
    const before = store.commits;
    const outcomes = await Promise.all([
      ...Array.from({ length: 10 }, () => store.insertDelivery(sms(), limits)),
      store.insertDelivery(other, limits),
    ]);
    expect(store.commits - before).toBe(1);
    expect(outcomes.slice(0, 10).map((outcome) => outcome.kind)).toEqual([...Array(3).fill('created'), ...Array(7).fill('limited')]);
    expect(outcomes[10].kind).toBe('created');
    expect(committedIds()).toHaveLength(4);
  });

  it('a batch that cannot commit fails every caller in it: none is told its write was saved', async () => {
    const { store, committedIds } = openStore();
    const answers = [row(), row(), row()].map((candidate) => store.insertDelivery(candidate));
    // The connection goes away before the batch's turn comes (as a disk or I/O failure would end the transaction).
    store.db.$client.close();
    const settled = await Promise.allSettled(answers);
    expect(settled.map((result) => result.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(committedIds()).toEqual([]);
  });

  it('close() commits the writes still waiting for their turn before closing', async () => {
    const { store, file } = openStore();
    const waiting = row();
    const answer = store.insertDelivery(waiting);
    await store.close();
    await expect(answer).resolves.toMatchObject({ kind: 'created' });
    const check = new Database(file, { readonly: true });
    expect(check.prepare('select count(*) as n from deliveries where id = ?').get(waiting.id)).toEqual({ n: 1 });
    check.close();
  });

  it("the dispatcher's writes (claim, outcome) are committed before they are answered, and join others' commits", async () => {
    const { store, file } = openStore();
    const queued = row();
    await store.insertDelivery(queued);
    const reader = new Database(file, { readonly: true });
    cleanups.push(() => {
      reader.close();
    });
    const status = () => (reader.prepare('select status, attempts from deliveries where id = ?').get(queued.id) as { status: string; attempts: number });
    const now = Date.now();
    const [claimed] = await store.claimDue(now, 10, now + 60_000);
    expect(claimed.id).toBe(queued.id);
    expect(status()).toEqual({ status: 'SENDING', attempts: 0 });
    const before = store.commits;
    const finished = store.finishAttempt(
      queued.id,
      { number: 1, startedAt: now, durationMs: 5, outcome: 'SENT', providerCode: null, providerMessage: null },
      { status: 'SENT', sentAt: now + 5, claimedUntil: null, nextAttemptAt: null },
      claimed.claimedUntil!,
    );
    const other = store.insertDelivery(row());
    expect(status().status).toBe('SENDING');
    await expect(finished).resolves.toMatchObject({ status: 'SENT', attempts: 1 });
    expect(status()).toEqual({ status: 'SENT', attempts: 1 });
    await other;
    expect(store.commits - before).toBe(1);
  });
});

describe('durability: the WAL is fdatasynced off the event loop before anyone hears of a commit', () => {
  const turns = async (count: number) => {
    for (let i = 0; i < count; i += 1) await new Promise((resolve) => setImmediate(resolve));
  };
  /** fs.fdatasync held in our hand: each call waits until the test lets it finish. */
  function holdSyncs() {
    const held: { fd: number; finish: (error?: Error) => void }[] = [];
    vi.spyOn(fs, 'fdatasync').mockImplementation(((fd: number, callback: (error: Error | null) => void) => {
      held.push({ fd, finish: (error) => callback(error ?? null) });
    }) as typeof fs.fdatasync);
    return held;
  }

  it('COMMIT does not fsync (synchronous = NORMAL); the caller is answered only once the WAL file itself is fdatasynced', async () => {
    const { store, file, committedIds } = openStore();
    expect(store.db.$client.pragma('synchronous', { simple: true })).toBe(1);
    const held = holdSyncs();
    const candidate = row();
    let answered = false;
    const answer = store.insertDelivery(candidate).then((outcome) => {
      answered = true;
      return outcome;
    });
    await turns(5);
    // Committed (another connection sees it), but not yet on disk: nobody has been told.
    expect(committedIds()).toEqual([candidate.id]);
    expect(answered).toBe(false);
    expect(held).toHaveLength(1);
    expect(fs.fstatSync(held[0]!.fd).ino).toBe(fs.statSync(`${file}-wal`).ino);
    held[0]!.finish();
    await expect(answer).resolves.toMatchObject({ kind: 'created', delivery: { id: candidate.id } });
  });

  it('commits made while an fsync is under way wait for the next one, which covers them all', async () => {
    const { store } = openStore();
    const held = holdSyncs();
    const syncsBefore = store.syncs;
    const first = store.insertDelivery(row());
    await turns(2);
    expect(held).toHaveLength(1);
    const later = [];
    for (let i = 0; i < 3; i += 1) {
      later.push(store.insertDelivery(row()));
      await turns(2);
    }
    // Three more commits, still one fsync at a time.
    expect(held).toHaveLength(1);
    let laterAnswered = false;
    void Promise.all(later).then(() => (laterAnswered = true));
    held[0]!.finish();
    await expect(first).resolves.toMatchObject({ kind: 'created' });
    await turns(2);
    expect(laterAnswered).toBe(false);
    expect(held).toHaveLength(2);
    held[1]!.finish();
    await Promise.all(later);
    expect(store.syncs - syncsBefore).toBe(2);
  });

  it('a failed fsync fails every caller it covered: none is told its write is safe', async () => {
    const { store } = openStore();
    const held = holdSyncs();
    const answers = [row(), row()].map((candidate) => store.insertDelivery(candidate));
    await turns(3);
    held[0]!.finish(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    const settled = await Promise.allSettled(answers);
    expect(settled.map((result) => result.status)).toEqual(['rejected', 'rejected']);
    expect(String((settled[0] as PromiseRejectedResult).reason)).toMatch(/EIO/);
  });
});
