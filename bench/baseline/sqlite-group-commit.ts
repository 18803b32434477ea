// What a bare server does to make an insert durable as cheaply as the gateway does, written as plainly as it can be:
// the inserts of one event-loop turn in one IMMEDIATE transaction (each in a savepoint, so one failure spares the
// rest), COMMIT with synchronous=NORMAL, then one fdatasync of the WAL on libuv's thread pool before anyone is answered;
// while a sync is under way the next inserts gather and commit together after it. Same durability as the gateway.
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from 'better-sqlite3';

interface Pending {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export function groupCommitter(db: Database) {
  db.pragma('synchronous = NORMAL');
  const walFd = fs.openSync(`${path.resolve(db.name)}-wal`, 'r');
  const savepoint = db.transaction((work: () => unknown) => work());
  const commit = db.transaction((batch: Pending[]) =>
    batch.map((pending) => {
      try {
        return { ok: true as const, value: savepoint(pending.work) };
      } catch (error) {
        return { ok: false as const, error };
      }
    }),
  );
  let queue: Pending[] = [];
  let scheduled = false;
  let syncing = false;
  let flushAfterSync = false;

  const flush = () => {
    scheduled = false;
    if (queue.length === 0) return;
    if (syncing) {
      flushAfterSync = true;
      return;
    }
    const batch = queue;
    queue = [];
    const results = commit.immediate(batch);
    syncing = true;
    fs.fdatasync(walFd, (error) => {
      syncing = false;
      batch.forEach((pending, index) => {
        const result = results[index]!;
        if (error) pending.reject(error);
        else if (result.ok) pending.resolve(result.value);
        else pending.reject(result.error);
      });
      if (flushAfterSync) {
        flushAfterSync = false;
        flush();
      }
    });
  };

  return <T>(work: () => T): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (!scheduled && !syncing) {
        scheduled = true;
        setImmediate(flush);
      } else if (syncing) flushAfterSync = true;
    });
}
