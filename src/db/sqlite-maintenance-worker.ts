// The retention pass's thread: purges, redactions, incremental vacuum and WAL checkpoints on a connection of its own,
// so that neither their CPU nor their fsyncs hold up the event loop that answers callers. See SqliteMaintenance.
import { parentPort, workerData } from 'node:worker_threads';
import Database, { type Statement } from 'better-sqlite3';
import type { RetentionStep } from './store';
import { retentionStatements, timedStep, type RetentionOperation } from './sqlite-retention';
import { WriteTurn } from './write-turn';

export interface MaintenanceWorkerData {
  databasePath: string;
  turn: SharedArrayBuffer;
}

export interface MaintenanceFailure {
  message: string;
  code?: string;
}

export type ToMaintenance = { type: 'run'; id: number; operation: RetentionOperation } | { type: 'close' };

export type FromMaintenance =
  | { type: 'ready' }
  | { type: 'done'; id: number; value: RetentionStep }
  | { type: 'failed'; id: number; error: MaintenanceFailure }
  | { type: 'free' };

/**
 * At most this often, after a write: each checkpoint copies the pages written since the last into the database file
 * and fsyncs it; a purge rewrites the same index pages again and again, so fewer checkpoints write far less (at 1,000
 * ms instead of 200 they took half the time in all). Between two, the WAL holds this long's frames.
 */
const checkpointEveryMs = 4000;

if (parentPort) {
  const port = parentPort;
  const { databasePath, turn } = workerData as MaintenanceWorkerData;
  const post = (message: FromMaintenance) => port.postMessage(message);
  const client = new Database(databasePath, { fileMustExist: true });
  client.pragma('busy_timeout = 5000');
  // Cascades to attempts, as on the event loop's connection. No fsync per commit: a purge lost to a crash is done
  // again by the next pass, and the WAL's fsync for callers' writes covers these too.
  client.pragma('foreign_keys = ON');
  // Deleted rows are zeroed where their page is written anyway; a page the purge empties is not written again just to
  // zero it (ON would double the pass's writes). Those pages are gone from the file by the pass's end: its vacuum steps
  // move live pages over them or cut them off.
  client.pragma('secure_delete = FAST');
  client.pragma('synchronous = NORMAL');
  // Its checkpoints run after a write, once the event loop has the turn back, not inside a commit while holding it.
  client.pragma('wal_autocheckpoint = 0');
  const statements = new Map<string, Statement>();
  const prepare = (source: string) => {
    let statement = statements.get(source);
    if (!statement) statements.set(source, (statement = client.prepare(source)));
    return statement;
  };
  const retention = retentionStatements(client, prepare);
  const transaction = client.transaction((work: () => number) => work());
  const run = (operation: RetentionOperation) => timedStep(retention, operation, (work) => transaction.immediate(work));
  const writeTurn = new WriteTurn(turn);
  let lastCheckpointAt = performance.now();
  const checkpoint = () => {
    lastCheckpointAt = performance.now();
    try {
      // PASSIVE: copies what no reader still needs, without the write lock, so callers' commits go on meanwhile.
      client.pragma('wal_checkpoint(PASSIVE)');
      // Those commits leave frames the copy did not take, and SQLite starts the WAL over only once every frame is in
      // the database file: without the rest copied too, the WAL grew for the whole pass (to 210 MB for a 20,000-row
      // pass under sends, 1.5 GB for 1,000,000). The rest is a few milliseconds' worth, copied holding the turn.
      writeTurn.take();
      try {
        client.pragma('wal_checkpoint(PASSIVE)');
      } finally {
        if (writeTurn.handBack()) post({ type: 'free' });
      }
    } catch {
      // Busy or failing: the next one tries again, and the event loop's connection checkpoints once the pass is over.
    }
  };

  port.on('message', (message: ToMaintenance) => {
    if (message.type === 'close') {
      checkpoint();
      client.close();
      port.close();
      return;
    }
    writeTurn.take();
    let answer: FromMaintenance;
    try {
      answer = { type: 'done', id: message.id, value: run(message.operation) };
    } catch (error) {
      const failure = error as { message?: string; code?: unknown };
      answer = { type: 'failed', id: message.id, error: { message: String(failure.message ?? error), code: typeof failure.code === 'string' ? failure.code : undefined } };
    }
    if (writeTurn.handBack()) post({ type: 'free' });
    post(answer);
    if (performance.now() - lastCheckpointAt >= checkpointEveryMs) checkpoint();
  });
  post({ type: 'ready' });
}
