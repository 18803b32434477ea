import { EventEmitter, on } from 'node:events';
import type { DeliveryRow } from '../db/schema';

export const finalStatuses: ReadonlySet<DeliveryRow['status']> = new Set(['SENT', 'FAILED', 'CANCELLED']);

/** In-process fan-out of delivery changes: waiting mutations and subscriptions listen here. */
export class DeliveryEvents {
  private readonly emitter = new EventEmitter({ captureRejections: false });

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publish(delivery: DeliveryRow): void {
    this.emitter.emit(delivery.id, delivery);
    this.emitter.emit('*', delivery);
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
