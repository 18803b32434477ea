import { EventEmitter, on } from 'node:events';
import type { DeliveryRow } from '../db/schema';
import type { ChangeFeed } from '../db/store';

export const finalStatuses: ReadonlySet<DeliveryRow['status']> = new Set(['SENT', 'FAILED', 'CANCELLED']);

/** Updates of one delivery held back until this process publishes the change it is committing (see `hold`). */
export interface HeldUpdates {
  /** Publishes the change, then the updates held back meanwhile, in the order they came. */
  publish(delivery: DeliveryRow): void;
  /** The change did not happen (or is not to be published): lets the held updates through. */
  release(): void;
}

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
  /** Deliveries whose updates wait for the change this process is making to them: what came meanwhile, in order. */
  private readonly held = new Map<string, DeliveryRow[]>();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  /** A change this process made (and committed): its listeners hear of it now, other processes' through the feed. */
  publish(delivery: DeliveryRow): void {
    this.emit(delivery);
    this.feed?.announce([delivery.id]);
  }

  /**
   * For a change this process is about to commit that makes a delivery due (it creates it, or queues it again): once
   * committed, another connection may claim it (the dispatcher's, on its own pool connection, or another replica's) and
   * publish SENDING before this process has heard back from its own write and published QUEUED; listeners would then
   * hear QUEUED last, and subscriptions drop it as stale. Until `publish` or `release`, updates of `id` wait.
   */
  hold(id: string): HeldUpdates {
    // Already held (two changes to one delivery at once): the first holder lets the updates through.
    if (this.held.has(id)) return { publish: (delivery) => this.publish(delivery), release: () => {} };
    this.held.set(id, []);
    const letThrough = () => {
      const later = this.held.get(id) ?? [];
      this.held.delete(id);
      for (const delivery of later) this.emit(delivery);
    };
    return {
      publish: (delivery) => {
        const later = this.held.get(id) ?? [];
        this.held.delete(id);
        this.publish(delivery);
        for (const update of later) this.emit(update);
      },
      release: letThrough,
    };
  }

  private emit(delivery: DeliveryRow): void {
    const held = this.held.get(delivery.id);
    if (held) {
      held.push(delivery);
      return;
    }
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
