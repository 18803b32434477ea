import type { Config } from '../config';
import type { Store } from '../db/store';
import { retentionBatch } from '../db/store-rules';
import type { Logger } from '../logger';

const dayMs = 86_400_000;
/** Shortly after start (once the gateway serves), then hourly. */
const firstPassDelayMs = 60_000;
const passIntervalMs = 3_600_000;
/** Free pages given back per transaction: 4 MB at SQLite's default page size. */
const reclaimPages = 1024;

export interface RetentionObserver {
  purged(count: number): void;
  redacted(count: number): void;
}

export interface RetentionDeps {
  store: Store;
  config: Pick<Config, 'retention'>;
  logger: Logger;
  observer?: RetentionObserver;
  /** Rows per transaction (default `retentionBatch`). */
  batch?: number;
  now?: () => number;
}

export interface RetentionReport {
  /** False when another replica was running its pass: this one did nothing. */
  ran: boolean;
  purged: number;
  redacted: number;
  ms: number;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** As long as the batch took: the pass takes at most half of the time (SQLite writes on the event loop's thread). */
const pauseAfter = (started: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(1, performance.now() - started)));

/**
 * The retention pass: deletes final deliveries older than DELIVERY_RETENTION_DAYS (attempts with them), then replaces
 * the content of final ones older than CONTENT_RETENTION_DAYS, a batch per short transaction with other work let in
 * between, then gives the freed pages back. One replica at a time runs it (`Store.exclusively`).
 */
export class Retention {
  private timer?: NodeJS.Timeout;
  private running?: Promise<RetentionReport>;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly deps: RetentionDeps) {
    this.now = deps.now ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    this.schedule(firstPassDelayMs);
  }

  /** No new pass; a pass under way stops after its current batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runPass()
        .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'retention pass failed; the next one is in an hour'))
        .finally(() => this.schedule(passIntervalMs));
    }, delayMs);
    this.timer.unref();
  }

  /** One pass now (or the one under way). */
  runPass(): Promise<RetentionReport> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<RetentionReport> {
    const { store, config, observer, logger } = this.deps;
    const batch = this.deps.batch ?? retentionBatch;
    const started = performance.now();
    const counts = await store.exclusively('retention', async () => {
      const now = this.now();
      let purged = 0;
      let redacted = 0;
      for (let done = batch, started = 0; done === batch && !this.stopped; await pauseAfter(started)) {
        started = performance.now();
        done = await store.purgeFinal(now - config.retention.deliveryDays * dayMs, batch);
        purged += done;
        observer?.purged(done);
      }
      for (let done = batch, started = 0; done === batch && !this.stopped; await pauseAfter(started)) {
        started = performance.now();
        done = await store.redactContent(now - config.retention.contentDays * dayMs, batch, now);
        redacted += done;
        observer?.redacted(done);
      }
      if (purged + redacted > 0) {
        while (!this.stopped && (await store.reclaimSpace(reclaimPages)) > 0) await nextTurn();
      }
      return { purged, redacted };
    });
    const report = { ran: counts !== undefined, purged: counts?.purged ?? 0, redacted: counts?.redacted ?? 0, ms: Math.round(performance.now() - started) };
    if (!report.ran) logger.debug('retention pass skipped: another replica is running one');
    else if (report.purged + report.redacted > 0) logger.info(report, 'retention pass finished');
    return report;
  }
}
