import { EventEmitter, on } from 'node:events';
import type { DeliveryRow } from '../db/schema';
import type { ChangeFeed } from '../db/store';

export const finalStatuses: ReadonlySet<DeliveryRow['status']> = new Set(['SENT', 'FAILED', 'CANCELLED']);

/**
 * Fan-out of delivery changes: waiting mutations and subscriptions listen here. Within one process directly; with a
 * change feed (replicas sharing a database), changes made elsewhere arrive as ids and are read back here, but only
 * those someone in this process is listening for.
 */
export class DeliveryEvents {
  private readonly emitter = new EventEmitter({ captureRejections: false });
  private feed?: ChangeFeed;
  private toRead = new Set<string>();
  private reading = false;

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  /** A change this process made (and committed): its listeners hear of it now, other processes' through the feed. */
  publish(delivery: DeliveryRow): void {
    this.emit(delivery);
    this.feed?.announce([delivery.id]);
  }

  private emit(delivery: DeliveryRow): void {
    this.emitter.emit(delivery.id, delivery);
    this.emitter.emit('*', delivery);
  }

  /** Joins the other processes on the same database: `read` fetches the rows they changed, by id. */
  connect(feed: ChangeFeed, read: (ids: readonly string[]) => Promise<DeliveryRow[]>, onError: (error: unknown) => void): void {
    this.feed = feed;
    feed.listen((ids) => {
      const everyone = this.emitter.listenerCount('*') > 0;
      // After a gap in the feed, what changed is unknown: read again every delivery someone waits for.
      const wanted = ids ?? this.emitter.eventNames().filter((name): name is string => typeof name === 'string' && name !== '*');
      for (const id of wanted) if (everyone || this.emitter.listenerCount(id) > 0) this.toRead.add(id);
      if (this.toRead.size === 0 || this.reading) return;
      this.reading = true;
      setImmediate(() => void this.readChanged(read, onError));
    });
  }

  private async readChanged(read: (ids: readonly string[]) => Promise<DeliveryRow[]>, onError: (error: unknown) => void): Promise<void> {
    try {
      while (this.toRead.size > 0) {
        const ids = [...this.toRead];
        this.toRead = new Set();
        try {
          for (const delivery of await read(ids)) this.emit(delivery);
        } catch (error) {
          onError(error);
        }
      }
    } finally {
      this.reading = false;
    }
  }

  /** Resolves with the first update that satisfies `done`, or undefined after `timeoutMs`. */
  waitFor(id: string, done: (delivery: DeliveryRow) => boolean, timeoutMs: number): { promise: Promise<DeliveryRow | undefined>; cancel: () => void } {
    let cancel = () => {};
    const promise = new Promise<DeliveryRow | undefined>((resolve) => {
      const listener = (delivery: DeliveryRow) => {
        if (!done(delivery)) return;
        cancel();
        resolve(delivery);
      };
      const timer = setTimeout(() => {
        cancel();
        resolve(undefined);
      }, timeoutMs);
      cancel = () => {
        clearTimeout(timer);
        this.emitter.off(id, listener);
      };
      this.emitter.on(id, listener);
    });
    return { promise, cancel };
  }

  /** Every update, or those of one delivery, as an async iterator (ends when `signal` aborts). */
  async *updates(signal: AbortSignal, id?: string): AsyncGenerator<DeliveryRow> {
    try {
      for await (const [delivery] of on(this.emitter, id ?? '*', { signal })) yield delivery as DeliveryRow;
    } catch (error) {
      if ((error as Error).name !== 'AbortError') throw error;
    }
  }
}
