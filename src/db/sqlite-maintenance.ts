import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { RetentionOperation } from './sqlite-retention';
import type { RetentionStep } from './store';
import type { FromMaintenance, MaintenanceWorkerData, ToMaintenance } from './sqlite-maintenance-worker';
import type { WriteTurn } from './write-turn';

/** The worker's entry: the bundle's sibling (dist/sqlite-maintenance-worker.js), or from source through tsx. */
function spawnMaintenanceWorker(data: MaintenanceWorkerData): Worker {
  const bundled = new URL('./sqlite-maintenance-worker.js', import.meta.url);
  const entry = fs.existsSync(bundled) ? bundled : new URL('./sqlite-maintenance-worker-source.mjs', import.meta.url);
  return new Worker(entry, { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
}

/** An error as the worker saw it, with SQLite's code, so that the store's fault classification reads it as usual. */
function workerError(error: { message: string; code?: string }): Error {
  return Object.assign(new Error(error.message), { name: 'SqliteError', code: error.code });
}

/**
 * The retention pass's own thread on the SQLite file, open for the length of a pass that has
 * something to do. The event loop's connection and this one take turns to write through `WriteTurn`.
 */
export class SqliteMaintenance {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: RetentionStep) => void; reject: (error: Error) => void }>();
  private failure?: Error;
  private readonly closed: Promise<void>;

  private constructor(
    private readonly worker: Worker,
    turn: WriteTurn,
    onFree: () => void,
  ) {
    this.closed = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (message: FromMaintenance) => {
      if (message.type === 'free') return onFree();
      if (message.type !== 'done' && message.type !== 'failed') return;
      const waiting = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.type === 'done') waiting?.resolve(message.value);
      else waiting?.reject(workerError(message.error));
    });
    const fail = (error: Error) => {
      this.failure ??= error;
      for (const waiting of this.pending.values()) waiting.reject(this.failure);
      this.pending.clear();
      // A thread that died holding the turn must not keep the event loop's writes waiting (its connection, closed
      // with the thread, rolled its transaction back).
      turn.reclaimFromThread();
      onFree();
    };
    worker.on('error', fail);
    worker.on('exit', () => fail(new Error('The maintenance thread stopped')));
  }

  static async start(databasePath: string, turn: WriteTurn, onFree: () => void): Promise<SqliteMaintenance> {
    const worker = spawnMaintenanceWorker({ databasePath, turn: turn.buffer });
    await new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', () => reject(new Error('The maintenance thread stopped before it was ready')));
      worker.on('message', function ready(message: FromMaintenance) {
        if (message.type !== 'ready') return;
        worker.off('message', ready);
        worker.off('error', reject);
        resolve();
      });
    });
    return new SqliteMaintenance(worker, turn, onFree);
  }

  run(operation: RetentionOperation): Promise<RetentionStep> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<RetentionStep>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'run', id, operation } satisfies ToMaintenance);
    });
  }

  /** After the operations under way; the thread's last checkpoint, then its connection closes. */
  async close(): Promise<void> {
    if (!this.failure) this.worker.postMessage({ type: 'close' } satisfies ToMaintenance);
    await this.closed;
  }
}
