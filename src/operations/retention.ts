import type { Config } from '../config';
import type { RetentionStep, Store } from '../db/store';
import { retentionBatch } from '../db/store-rules';
import type { Logger } from '../logger';
import type { CallerActivity } from './caller-activity';

const dayMs = 86_400_000;
/** Shortly after start (once the gateway serves), then hourly. */
const firstPassDelayMs = 60_000;
const passIntervalMs = 3_600_000;
/** How long one batch's transaction should take, and the bounds of its size in rows (or free pages). */
const batchTargetMs = 3;
const minBatch = 10;
const maxBatch = 2000;
/**
 * The pause after a step, in the step's time as the event loop saw it (the wait for the turn and the trip back
 * included, so that a busy event loop slows the pass down): the pass keeps to about an eleventh of the time. What it
 * costs callers is mostly its disk writes, the WAL frames their own fsync carries and the checkpoints; BENCHMARKS.md has
 * the runs at 3, 5 and 10.
 */
const restPerBatch = 10;
/**
 * With no caller served and no delivery attempted for `quietMs`, the pass rests once its step instead: a backlog
 * (a year's rows after an upgrade) goes up to five times as fast at night, and the first caller back waits for one step at
 * most, as under load; the step after their request rests ten times again.
 */
const restWhenQuiet = 1;
const quietMs = 5000;

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
  /** Milliseconds on a monotonic clock, to time steps (default performance.now). */
  clock?: () => number;
  /** The rest between steps (default a timer). */
  pause?: (ms: number) => Promise<void>;
  /** Whether callers are being served: the pass rests less while they are not (default: always as if they were). */
  activity?: Pick<CallerActivity, 'quietFor'>;
}

export interface RetentionReport {
  /** False when another replica was running its pass: this one did nothing. */
  ran: boolean;
  purged: number;
  redacted: number;
  ms: number;
}

const timerPause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(1, ms)));

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

  /**
   * Runs `step` until it does less than it was asked. The batch is sized so that its transaction takes about
   * `batchTargetMs`: a send that arrives during one waits at most that long (SQLite has one writer at a time,
   * PostgreSQL holds row locks; queries do not wait). A pause `restPerBatch` times as long as the whole step follows
   * (`restWhenQuiet` times while no caller is being served).
   */
  private async inBatches(step: (limit: number) => Promise<RetentionStep>, count?: (rows: number) => void): Promise<number> {
    let limit = this.deps.batch ?? retentionBatch;
    const fixed = this.deps.batch !== undefined;
    let total = 0;
    const clock = this.deps.clock ?? (() => performance.now());
    const pause = this.deps.pause ?? timerPause;
    while (!this.stopped) {
      const started = clock();
      const { count: done, transactionMs } = await step(limit);
      const tookMs = clock() - started;
      total += done;
      if (done > 0) count?.(done);
      if (done < limit) break;
      if (!fixed) {
        if (transactionMs > batchTargetMs) limit = Math.max(minBatch, Math.floor(limit / 2));
        else if (transactionMs < batchTargetMs / 2) limit = Math.min(maxBatch, limit * 2);
      }
      await pause(tookMs * (this.deps.activity?.quietFor(quietMs) ? restWhenQuiet : restPerBatch));
    }
    return total;
  }

  /** One pass now (or the one under way). */
  runPass(): Promise<RetentionReport> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<RetentionReport> {
    const { store, config, observer, logger } = this.deps;
    const started = performance.now();
    const counts = await store.exclusively('retention', async () => {
      const now = this.now();
      const purged = await this.inBatches((limit) => store.purgeFinal(now - config.retention.deliveryDays * dayMs, limit), observer?.purged);
      const redacted = await this.inBatches(
        (limit) => store.redactContent(now - config.retention.contentDays * dayMs, limit, now),
        observer?.redacted,
      );
      // The freed pages go back in steps sized by time as the batches are: filling the holes moves pages and rewrites
      // the pointers to them, a step of a few hundred pages can take as long as a batch of rows.
      if (purged + redacted > 0) {
        await this.inBatches(async (pages) => {
          const { count: stillFree, transactionMs } = await store.reclaimSpace(pages);
          return { count: stillFree === 0 ? 0 : pages, transactionMs };
        });
      }
      return { purged, redacted };
    });
    const report = { ran: counts !== undefined, purged: counts?.purged ?? 0, redacted: counts?.redacted ?? 0, ms: Math.round(performance.now() - started) };
    if (!report.ran) logger.debug('retention pass skipped: another replica is running one');
    else if (report.purged + report.redacted > 0) logger.info(report, 'retention pass finished');
    return report;
  }
}
