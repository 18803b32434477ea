import fs from 'node:fs';
import path from 'node:path';
import type { Statement } from 'better-sqlite3';
import { and, asc, count, eq, gte, inArray, isNull, lt, min, or, sql } from 'drizzle-orm';
import { migrationsCurrent, openDatabase, type Db } from './sqlite-client';
import { columnNames, selectList } from './columns';
import type { ApiTokenRow, AttemptRow, DeliveryRow, NewDeliveryRow } from './schema';
import { apiTokens, deliveries, deliveryAttempts } from './sqlite-schema';
import {
  reservationId,
  type DeliveryFilter,
  type DeliveryPatch,
  type ErasureRequest,
  type FoldRequest,
  type InsertOutcome,
  type KeysetPage,
  type NewAttempt,
  type PacingOutcome,
  type PacingRequest,
  type PacingWindow,
  type RecipientLimit,
  type RetentionStep,
  type StatsQuery,
  type StatsRow,
  type StatusCount,
  type Store,
} from './store';
import { SqliteMaintenance } from './sqlite-maintenance';
import { incrementalAutoVacuum, retentionStatements, timedStep, type RetentionOperation } from './sqlite-retention';
import { WriteTurn } from './write-turn';
import {
  attemptEffect,
  deferredEffect,
  digestOutcomeEffect,
  erasureEffect,
  nothingToRetain,
  redactedPayload,
  scrubbed,
  foldedEffect,
  heldAttemptEffect,
  interruptedEffect,
  limitRetryAfterMs,
  limitWindowStart,
  patchEntries,
} from './store-rules';

// Literal (not bound) statuses, so SQLite can prove the partial indexes apply.
const isPending = sql`${deliveries.status} in ('QUEUED', 'RETRYING')`;
const isSending = sql`${deliveries.status} = 'SENDING'`;
/** Widest time slice `deliveryStats` counts in one statement. */
const statsSliceMs = 3_600_000;

const deliveryNames = columnNames(deliveries);
const attemptNames = columnNames(deliveryAttempts);
const tokenNames = columnNames(apiTokens);
const deliveryColumns = selectList(deliveryNames);
const attemptColumns = selectList(attemptNames);
const tokenColumns = selectList(tokenNames);

// The hot statements' text, built once: the statement cache is keyed by it.
const deliveryKeys = [...deliveryNames.keys()];
const insertDeliverySql = `insert into deliveries (${[...deliveryNames.values()].map((name) => `"${name}"`).join(', ')})
  values (${deliveryKeys.map(() => '?').join(', ')})`;
const deliveryByIdSql = `select ${deliveryColumns} from deliveries where id = ?`;
const deliveryByKeySql = `select ${deliveryColumns} from deliveries where caller_id = ? and idempotency_key = ?`;
// INDEXED BY: with a large backlog the planner would otherwise read every QUEUED row by status and sort them.
const claimDueSql = `update deliveries set status = 'SENDING', claimed_until = ?, updated_at = ?
  where id in (select id from deliveries indexed by deliveries_due_idx
               where status in ('QUEUED', 'RETRYING') and next_attempt_at <= ? order by next_attempt_at limit ?)
  returning ${deliveryColumns}`;
const insertAttemptSql = `insert into delivery_attempts (delivery_id, number, channel, recipient, provider, started_at, duration_ms,
  outcome, provider_code, provider_message) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
const endReservationSql = 'delete from pacing_reservations where id = ?';
const lastAttemptNumberSql = 'select max(number) as number from delivery_attempts where delivery_id = ?';
/** What `heldAttemptEffect` assumes, checked by the update: SENDING under the attempt's claim, nothing recorded from its number on. */
const heldByAttemptSql = ` and status = 'SENDING' and claimed_until = ? and attempts < ?
  and not exists (select 1 from delivery_attempts where delivery_id = ? and number >= ?)`;

const probeName = 'store-probe';
const probeFiller = 'x'.repeat(3 * 4096);

/** A retention pass under way, and its thread once it has found something to do. */
interface RetentionPass {
  maintenance?: Promise<SqliteMaintenance>;
}

interface PendingWrite {
  work: () => unknown;
  resolve: (value: never) => void;
  reject: (error: unknown) => void;
}

type WriteResult = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * The dispatcher's own writes (claims, attempt outcomes) commit at most this often while it is busy: under a steady
 * stream of sends each fsync then covers several of them instead of one each. An idle gateway commits at once. Each
 * commit writes every page it dirtied to the WAL (and later to the database): at 5 ms a commit carried ~7 attempts and
 * the draining gateway spent some 50–100 µs of CPU per email more than at 10 ms, most of it in those writes.
 */
const pacedWindowMs = 10;

/** Bytes: the WAL file is cut back to this when it starts over (`journal_size_limit`). */
const walSizeLimit = 16 * 1024 * 1024;

/**
 * Hot paths run raw statements prepared once (drizzle's builder would build the SQL and prepare it again on every
 * call); everything else goes through drizzle. Writes that decide what a caller is told are group-committed: see
 * `write`.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  /** The embedded database belongs to one gateway process. */
  readonly shared = false;
  private readonly statements = new Map<string, Statement>();
  /** `updateDelivery`'s statements by the patch's columns and the condition they come with. */
  private readonly updates = new Map<string, Statement>();
  private pendingWrites: PendingWrite[] = [];
  private flushScheduled = false;
  private flushTimer?: NodeJS.Timeout;
  private pendingPaced = false;
  private lastPacedFlushAt = Number.NEGATIVE_INFINITY;
  private committed = 0;
  private readonly commitBatch: (batch: PendingWrite[]) => WriteResult[];
  /** The WAL file, for fdatasync off the event loop; undefined for an in-memory database (nothing to make durable). */
  private readonly walPath?: string;
  private walFd?: number;
  /** Committed batches waiting for the next fsync of the WAL, and whether one is under way. */
  private awaitingSync: ((error?: Error) => void)[] = [];
  private syncing?: Promise<void>;
  private flushAfterSync = false;
  private synced = 0;
  private readonly retention: ReturnType<typeof retentionStatements>;
  /** Between this connection and the retention pass's thread, while a pass runs (see `exclusively`). */
  private readonly writeTurn = new WriteTurn();
  private retentionPass?: RetentionPass;
  private flushWhenFree = false;

  /**
   * The one call that makes commits durable. A test replaces it to fail as a failing disk does (EIO): a root-owned
   * test cannot make the kernel fail an fsync, and permissions do not stop root.
   */
  fdatasync = (fd: number) => new Promise<void>((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve())));

  private constructor(readonly db: Db) {
    const client = db.$client;
    if (!client.memory) {
      // COMMIT writes the WAL frames without fsync (NORMAL); durability comes from fsyncing the WAL file on libuv's
      // thread pool before anyone hears of the commit: what FULL promises, without blocking the event loop on the
      // disk, and one fsync covers every commit written before it.
      client.pragma('synchronous = NORMAL');
      // Each checkpoint that copies the whole WAL lets the next commit write it over from the start; the file keeps its
      // largest size all the same unless told. 16 MiB is four times what it reaches between automatic checkpoints, so only
      // a WAL a retention pass grew is cut back (see `exclusively`).
      client.pragma(`journal_size_limit = ${walSizeLimit}`);
      this.walPath = `${path.resolve(client.name)}-wal`;
    }
    const savepoint = client.transaction((work: () => unknown) => work());
    const batchTransaction = client.transaction((batch: PendingWrite[]): WriteResult[] =>
      batch.map((pending): WriteResult => {
        try {
          return { ok: true, value: savepoint(pending.work) };
        } catch (error) {
          // An error that ended the whole transaction (disk full, I/O error) fails the batch; any other fails one write.
          if (!client.inTransaction) throw error;
          return { ok: false, error };
        }
      }),
    );
    this.commitBatch = (batch) => batchTransaction.immediate(batch);
    this.retention = retentionStatements(client, (source) => this.prepared(source));
  }

  static open(databasePath: string): SqliteStore {
    return new SqliteStore(openDatabase(databasePath));
  }

  /**
   * Group commit: writes asked for in the same turn of the event loop run in one IMMEDIATE transaction, in order, each
   * in a savepoint of its own (one that fails leaves the others), and every caller hears back only after the COMMIT.
   * One fsync for the lot instead of one each; a caller is never told of a write that is not durable.
   */
  private write<T>(work: () => T, options: { paced?: boolean } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pendingWrites.push({ work, resolve: resolve as (value: never) => void, reject });
      if (options.paced) this.pendingPaced = true;
      if (this.flushScheduled) return;
      // A paced write waits (at most pacedWindowMs) for the next commit unless something else commits sooner.
      const wait = options.paced ? this.lastPacedFlushAt + pacedWindowMs - performance.now() : 0;
      if (wait > 0) {
        this.flushTimer ??= setTimeout(() => this.flushWrites(), wait);
        return;
      }
      this.flushScheduled = true;
      setImmediate(() => this.flushWrites());
    });
  }

  private flushWrites(options: { now?: boolean } = {}): void {
    this.flushScheduled = false;
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const batch = this.pendingWrites;
    if (batch.length === 0) return;
    // While an fsync is under way, committing now would not answer anyone sooner (they would wait for the next fsync
    // anyway): the writes gather and commit together once it is done, one larger transaction instead of several.
    if (this.syncing && !options.now) {
      this.flushAfterSync = true;
      return;
    }
    // The retention pass's thread is writing: the batch commits when it hands the turn back (a few milliseconds),
    // rather than this thread sleeping in SQLite's busy handler meanwhile.
    const turnTaken = this.retentionPass !== undefined;
    if (turnTaken && !this.writeTurn.tryTake()) {
      this.flushWhenFree = true;
      return;
    }
    this.pendingWrites = [];
    if (this.pendingPaced) {
      this.pendingPaced = false;
      this.lastPacedFlushAt = performance.now();
    }
    let results: WriteResult[];
    try {
      results = this.commitBatch(batch);
      this.committed += 1;
    } catch (error) {
      // Rolled back (or never begun): none of the batch was committed.
      for (const pending of batch) pending.reject(error);
      return;
    } finally {
      if (turnTaken) this.writeTurn.release();
    }
    this.afterSync((syncError) => {
      batch.forEach((pending, index) => {
        const result = results[index]!;
        if (syncError) pending.reject(syncError);
        else if (result.ok) pending.resolve(result.value as never);
        else pending.reject(result.error);
      });
    });
  }

  /** Runs `done` once everything committed so far is on disk: after the next fsync of the WAL that starts from now. */
  private afterSync(done: (error?: Error) => void): void {
    if (!this.walPath) return done();
    this.awaitingSync.push(done);
    this.syncing ??= this.syncWal();
  }

  private async syncWal(): Promise<void> {
    while (this.awaitingSync.length > 0) {
      const round = this.awaitingSync;
      this.awaitingSync = [];
      let failure: Error | undefined;
      try {
        // SQLite keeps the WAL file (same inode) while this connection is open, so one descriptor serves throughout.
        this.walFd ??= this.openWal();
        // fdatasync: the WAL's frames and its length, which is what a reader of the file after a crash needs.
        await this.fdatasync(this.walFd);
        this.synced += 1;
      } catch (error) {
        failure = error as Error;
      }
      for (const done of round) done(failure);
      if (this.flushAfterSync) {
        this.flushAfterSync = false;
        this.flushWrites({ now: true });
      }
    }
    this.syncing = undefined;
  }

  private openWal(): number {
    const fd = fs.openSync(this.walPath!, 'r');
    // The file's entry in its folder must be on disk too, or a power cut could lose the whole WAL: once, up front.
    const folder = fs.openSync(path.dirname(this.walPath!), 'r');
    try {
      fs.fsyncSync(folder);
    } finally {
      fs.closeSync(folder);
    }
    return fd;
  }

  /** Group commits so far (each one transaction). */
  get commits(): number {
    return this.committed;
  }

  /** fdatasyncs of the WAL so far (each covering one or more commits). */
  get syncs(): number {
    return this.synced;
  }

  private prepared(source: string): Statement {
    let statement = this.statements.get(source);
    if (!statement) {
      statement = this.db.$client.prepare(source);
      this.statements.set(source, statement);
    }
    return statement;
  }

  async insertDelivery(row: NewDeliveryRow, limits: RecipientLimit[] = []): Promise<InsertOutcome> {
    // Within the transaction the checks see every write before them, committed or in this batch: exact under load.
    return this.write(() => this.insertNow(row, limits));
  }

  private insertNow(row: NewDeliveryRow, limits: RecipientLimit[]): InsertOutcome {
    if (row.idempotencyKey != null) {
      const existing = this.prepared(deliveryByKeySql).get(row.callerId, row.idempotencyKey) as DeliveryRow | undefined;
      if (existing) return { kind: 'existing', delivery: existing };
    }
    for (const limit of limits) {
      const since = limitWindowStart(limit, row.createdAt);
      const window = (
        limit.scope === 'caller'
          ? this.prepared('select count(*) as used, min(created_at) as oldest from deliveries where caller_id = ? and created_at > ?').get(
              row.callerId,
              since,
            )
          : this.prepared(
              `select count(*) as used, min(created_at) as oldest from deliveries
               where recipient = ? and channel = ? and created_at > ? and status <> 'CANCELLED'`,
            ).get(row.recipient, row.channel, since)
      ) as { used: number; oldest: number | null };
      const retryAfterMs = limitRetryAfterMs(limit, window.used, window.oldest, row.createdAt);
      if (retryAfterMs !== undefined) return { kind: 'limited', retryAfterMs, limit };
    }
    const fields = row as Record<string, unknown>;
    const values = deliveryKeys.map((key) => fields[key] ?? (key === 'attempts' ? 0 : null));
    this.prepared(insertDeliverySql).run(values);
    // Every column is given (no default but attempts, no trigger): the row as stored is the values, without reading it back.
    const delivery: Record<string, unknown> = {};
    deliveryKeys.forEach((key, index) => (delivery[key] = values[index]));
    return { kind: 'created', delivery: delivery as DeliveryRow };
  }

  /**
   * `update deliveries set <patch>` for one delivery, optionally only from some statuses or only while an attempt holds
   * it (`heldBy`); undefined when no row matched.
   */
  private updateDelivery(
    id: string,
    patch: DeliveryPatch & { updatedAt: number },
    only: { fromStatuses?: readonly DeliveryRow['status'][]; heldBy?: { claimedUntil: number; number: number } } = {},
  ): DeliveryRow | undefined {
    const { fromStatuses, heldBy } = only;
    const entries = patchEntries(patch);
    let shape = entries.map(([key]) => key).join();
    if (fromStatuses) shape += ` from ${fromStatuses.length}`;
    if (heldBy) shape += ' held';
    let statement = this.updates.get(shape);
    if (!statement) {
      const assignments = entries.map(([key]) => `"${deliveryNames.get(key)}" = ?`).join(', ');
      const statuses = fromStatuses ? ` and status in (${fromStatuses.map(() => '?').join(', ')})` : '';
      const held = heldBy ? heldByAttemptSql : '';
      statement = this.db.$client.prepare(`update deliveries set ${assignments} where id = ?${statuses}${held} returning ${deliveryColumns}`);
      this.updates.set(shape, statement);
    }
    const values = entries.map(([, value]) => value);
    values.push(id);
    if (fromStatuses) values.push(...fromStatuses);
    if (heldBy) values.push(heldBy.claimedUntil, heldBy.number, id, heldBy.number);
    return statement.get(values) as DeliveryRow | undefined;
  }

  async getDelivery(id: string) {
    return this.deliveryNow(id);
  }

  private deliveryNow(id: string): DeliveryRow | undefined {
    return this.prepared(deliveryByIdSql).get(id) as DeliveryRow | undefined;
  }

  async getDeliveries(ids: readonly string[]) {
    if (ids.length === 0) return [];
    return this.db.select().from(deliveries).where(inArray(deliveries.id, [...ids])).all();
  }

  async listDeliveries(filter: DeliveryFilter, page: KeysetPage) {
    // Each combination of filters is its own statement, prepared once: at most 2^8 of them.
    const conditions: string[] = [];
    const params: unknown[] = [];
    const where = (condition: string, ...values: unknown[]) => {
      conditions.push(condition);
      params.push(...values);
    };
    if (filter.channel) where('"channel" = ?', filter.channel);
    if (filter.status) where('"status" = ?', filter.status);
    if (filter.recipient !== undefined) where('"recipient" = ?', filter.recipient);
    if (filter.callerId !== undefined) where('"caller_id" = ?', filter.callerId);
    if (filter.createdAfter !== undefined) where('"created_at" > ?', filter.createdAfter);
    if (filter.createdBefore !== undefined) where('"created_at" < ?', filter.createdBefore);
    if (page.after) where('("created_at", "id") < (?, ?)', page.after.createdAt, page.after.id);
    if (page.before) where('("created_at", "id") > (?, ?)', page.before.createdAt, page.before.id);
    const order = page.inverted ? 'asc' : 'desc';
    const source = `select ${deliveryColumns} from "deliveries"${conditions.length > 0 ? ` where ${conditions.join(' and ')}` : ''} order by "created_at" ${order}, "id" ${order} limit ?`;
    return this.prepared(source).all(...params, page.limit) as DeliveryRow[];
  }

  async listAttempts(deliveryId: string) {
    return this.prepared(`select ${attemptColumns} from delivery_attempts where delivery_id = ? order by number`).all(deliveryId) as AttemptRow[];
  }

  async claimDue(now: number, limit: number, leaseUntil: number) {
    return this.write(() => {
      const claimed = this.prepared(claimDueSql).all(leaseUntil, now, now, limit) as DeliveryRow[];
      // RETURNING comes in no particular order: the longest due first.
      return claimed.sort((a, b) => a.nextAttemptAt! - b.nextAttemptAt!);
    }, { paced: true });
  }

  async releaseClaims(now: number, maxAttempts: number, which: 'all' | 'lapsed') {
    const caught = () =>
      (which === 'all'
        ? this.prepared(`select ${deliveryColumns} from deliveries where status = 'SENDING'`).all()
        : this.prepared(
            `select ${deliveryColumns} from deliveries indexed by deliveries_claimed_idx
             where status = 'SENDING' and claimed_until < ? order by claimed_until`,
          ).all(now)) as DeliveryRow[];
    // Asked about once a second: a write (and its fsync) only when there is something to hand back.
    if (caught().length === 0) return [];
    return this.write(() =>
      caught().map((delivery) => {
        const { attempt, changes } = interruptedEffect(delivery, this.lastAttemptNumber(delivery.id), now, maxAttempts);
        return this.recordAttempt(delivery, attempt.number, attempt, changes, attempt.number);
      }),
    );
  }

  async reservePacingSlot(request: PacingRequest, decide: (window: PacingWindow) => number | undefined): Promise<PacingOutcome> {
    // Inside the write transaction: nothing else can reserve between the reads and the reservation.
    return this.write((): PacingOutcome => {
      const { channel, recipient, deliveryId, number, now } = request;
      this.prepared('delete from pacing_reservations where channel = ? and recipient = ? and expires_at <= ?').run(channel, recipient, now);
      const attemptEnds = (
        this.prepared(
          `select started_at + duration_ms as endedAt from delivery_attempts
           where channel = ? and recipient = ? and started_at >= ? and started_at + duration_ms >= ? order by endedAt`,
        ).all(channel, recipient, now - request.windowMs - request.longestAttemptMs, now - request.windowMs) as { endedAt: number }[]
      ).map((row) => row.endedAt);
      const { underway } = this.prepared(
        'select count(*) as underway from pacing_reservations where channel = ? and recipient = ?',
      ).get(channel, recipient) as { underway: number };
      const { mutedAt } = this.prepared(
        `select max(started_at) as mutedAt from delivery_attempts
         where channel = ? and recipient = ? and started_at >= ? and outcome = 'RATE_LIMITED'`,
      ).get(channel, recipient, now - request.muteMs) as { mutedAt: number | null };
      const turns = (
        this.prepared(
          `select next_attempt_at as turn from deliveries indexed by deliveries_pending_recipient_idx
           where recipient = ? and status in ('QUEUED', 'RETRYING') and next_attempt_at >= ?
             and channel = ? and next_attempt_at > created_at and id <> ?`,
        ).all(recipient, now - request.windowMs, channel, deliveryId) as { turn: number }[]
      ).map((row) => row.turn);
      const turn = decide({ attemptEnds, underway, mutedAt: mutedAt ?? undefined, turns });
      if (turn === undefined) {
        this.prepared(
          'insert into pacing_reservations (id, channel, recipient, reserved_at, expires_at) values (?, ?, ?, ?, ?)',
        ).run(reservationId(deliveryId, number), channel, recipient, now, request.expiresAt);
        return { reserved: true };
      }
      return { reserved: false, turn, delivery: this.updateDelivery(deliveryId, deferredEffect(turn, now), { fromStatuses: ['SENDING'] }) };
    });
  }

  async finishAttempt(deliveryId: string, attempt: NewAttempt, patch: DeliveryPatch, claimedUntil?: number) {
    return this.write(() => {
      if (claimedUntil !== undefined) {
        // The usual case without reading the row first: the update checks what the rule assumes.
        const { number, changes } = heldAttemptEffect(attempt, patch);
        const updated = this.updateDelivery(deliveryId, changes, { heldBy: { claimedUntil, number } });
        if (updated) {
          this.insertAttempt(updated, number, attempt, number);
          return updated;
        }
      }
      const current = this.deliveryNow(deliveryId);
      if (!current) throw new Error(`delivery ${deliveryId} vanished during an attempt`);
      const { number, changes } = attemptEffect(current, this.lastAttemptNumber(deliveryId), attempt, patch, claimedUntil);
      return this.recordAttempt(current, number, attempt, changes, attempt.number);
    }, { paced: true });
  }

  /** Inserts the attempt, ends its pacing reservation (`reservedAs`, the number it was reserved under) and updates the delivery. */
  private recordAttempt(
    delivery: DeliveryRow,
    number: number,
    attempt: NewAttempt,
    changes: DeliveryPatch & { updatedAt: number },
    reservedAs: number,
  ): DeliveryRow {
    this.insertAttempt(delivery, number, attempt, reservedAs);
    return this.updateDelivery(delivery.id, changes)!;
  }

  /** Inserts the attempt and ends its pacing reservation (`reservedAs`, the number it was reserved under). */
  private insertAttempt(delivery: DeliveryRow, number: number, attempt: NewAttempt, reservedAs: number): void {
    this.prepared(insertAttemptSql).run(
      delivery.id,
      number,
      delivery.channel,
      delivery.recipient,
      delivery.provider,
      attempt.startedAt,
      attempt.durationMs,
      attempt.outcome,
      attempt.providerCode,
      attempt.providerMessage,
    );
    this.prepared(endReservationSql).run(reservationId(delivery.id, reservedAs));
  }

  private lastAttemptNumber(deliveryId: string): number | null {
    return (this.prepared(lastAttemptNumberSql).get(deliveryId) as { number: number | null }).number;
  }

  async foldDigest(request: FoldRequest, choose: (waiting: DeliveryRow[]) => string[]): Promise<DeliveryRow[]> {
    // Inside the write transaction: SQLite serialises writers, so no claim or other fold sees these rows meanwhile.
    return this.write(() => {
      const { channel, recipient, carrierId, claimedUntil, now } = request;
      const waiting = this.prepared(
        `select ${deliveryColumns} from deliveries indexed by deliveries_pending_recipient_idx
         where recipient = ? and status in ('QUEUED', 'RETRYING') and channel = ? and id <> ?
         order by created_at, id limit ?`,
      ).all(recipient, channel, carrierId, request.limit) as DeliveryRow[];
      if (waiting.length <= request.threshold) return [];
      const chosen = new Set(choose(waiting));
      if (chosen.size === 0) return [];
      const carrier = this.updateDelivery(carrierId, { digestId: carrierId, updatedAt: now }, { fromStatuses: ['SENDING'] });
      if (!carrier || carrier.claimedUntil !== claimedUntil) throw new Error(`delivery ${carrierId} is no longer held by this attempt`);
      const folded: DeliveryRow[] = [];
      for (const delivery of waiting) {
        if (!chosen.has(delivery.id)) continue;
        const row = this.updateDelivery(delivery.id, foldedEffect(carrierId, claimedUntil, now), { fromStatuses: ['QUEUED', 'RETRYING'] });
        if (row) folded.push(row);
      }
      return folded;
    }, { paced: true });
  }

  async settleDigest(carrierId: string, sent: boolean, now: number): Promise<DeliveryRow[]> {
    return this.write(() => {
      const rows = this.prepared(
        `select id from deliveries indexed by deliveries_digest_idx where digest_id = ? and id <> ? and status = 'SENDING'`,
      ).all(carrierId, carrierId) as { id: string }[];
      if (!sent) this.prepared('update deliveries set digest_id = null where id = ?').run(carrierId);
      return rows.map(({ id }) => this.updateDelivery(id, digestOutcomeEffect(sent, now), { fromStatuses: ['SENDING'] })!);
    }, { paced: true });
  }

  async listFolded(carrierId: string): Promise<DeliveryRow[]> {
    return this.prepared(
      `select ${deliveryColumns} from deliveries indexed by deliveries_digest_idx where digest_id = ? order by created_at, id`,
    ).all(carrierId) as DeliveryRow[];
  }

  async transition(id: string, fromStatuses: readonly DeliveryRow['status'][], patch: DeliveryPatch) {
    return this.write(() => this.updateDelivery(id, { ...patch, updatedAt: Date.now() }, { fromStatuses }));
  }


  async countByStatus(): Promise<StatusCount[]> {
    return this.db
      .select({ channel: deliveries.channel, status: deliveries.status, count: count() })
      .from(deliveries)
      .groupBy(deliveries.channel, deliveries.status)
      .all();
  }

  async oldestPendingCreatedAt() {
    const row = this.db
      .select({ oldest: min(deliveries.createdAt) })
      .from(deliveries)
      .where(or(isPending, isSending))
      .get();
    return row?.oldest ?? undefined;
  }

  async countPending() {
    return this.db
      .select({ channel: deliveries.channel, count: count() })
      .from(deliveries)
      .where(sql`${deliveries.status} in ('QUEUED', 'RETRYING', 'SENDING')`)
      .groupBy(deliveries.channel)
      .all();
  }

  async deliveryStats({ from, to, bucketMs, channel, callerId }: StatsQuery): Promise<StatsRow[]> {
    if (!Number.isSafeInteger(bucketMs) || bucketMs <= 0) throw new RangeError('bucketMs must be a positive integer');
    // One GROUP BY over a wide window sorts every row in it while the event loop waits (3 s for a million rows).
    // Counted slice by slice instead, none wider than an hour or a bucket, with other work let in between slices.
    const sliceMs = Math.min(bucketMs, statsSliceMs);
    const countSlice = this.db
      .select({ channel: deliveries.channel, status: deliveries.status, count: count() })
      .from(deliveries)
      .where(
        and(
          gte(deliveries.createdAt, sql.placeholder('from')),
          lt(deliveries.createdAt, sql.placeholder('to')),
          channel ? eq(deliveries.channel, channel) : undefined,
          callerId !== undefined ? eq(deliveries.callerId, callerId) : undefined,
        ),
      )
      .groupBy(deliveries.channel, deliveries.status)
      .prepare();
    const rows = new Map<string, StatsRow>();
    let resumed = performance.now();
    for (let start = from; start < to; ) {
      const bucketStart = Math.floor(start / bucketMs) * bucketMs;
      const end = Math.min(to, bucketStart + bucketMs, Math.floor(start / sliceMs) * sliceMs + sliceMs);
      for (const row of countSlice.all({ from: start, to: end })) {
        const key = `${bucketStart}:${row.channel}:${row.status}`;
        const total = rows.get(key);
        if (total) total.count += row.count;
        else rows.set(key, { bucketStart, ...row });
      }
      start = end;
      if (performance.now() - resumed > 10) {
        await new Promise((resolve) => setImmediate(resolve));
        resumed = performance.now();
      }
    }
    return [...rows.values()].sort(
      (a, b) => a.bucketStart - b.bucketStart || a.channel.localeCompare(b.channel) || a.status.localeCompare(b.status),
    );
  }

  async purgeFinal(before: number, limit: number): Promise<RetentionStep> {
    return this.retentionStep({ kind: 'purgeFinal', args: [before, limit] }, () => this.retention.anyToPurge(before));
  }

  async redactContent(before: number, limit: number, now: number): Promise<RetentionStep> {
    return this.retentionStep({ kind: 'redactContent', args: [before, limit, now] }, () => this.retention.anyToRedact(before));
  }

  async reclaimSpace(pages: number): Promise<RetentionStep> {
    const client = this.db.$client;
    if (client.memory || client.pragma('auto_vacuum', { simple: true }) !== incrementalAutoVacuum) return nothingToRetain;
    return this.retentionStep({ kind: 'reclaimSpace', args: [pages] }, () => this.retention.anyToReclaim());
  }

  /**
   * Within a retention pass on a file, the step runs on the pass's own thread, started when the pass first finds
   * something to do (an hourly pass with nothing to do costs the thread nothing); otherwise here, group-committed.
   */
  private async retentionStep(operation: RetentionOperation, pending: () => boolean): Promise<RetentionStep> {
    const pass = this.retentionPass;
    if (!pass) return this.write(() => timedStep(this.retention, operation));
    if (!pass.maintenance) {
      if (!pending()) return nothingToRetain;
      pass.maintenance = SqliteMaintenance.start(this.db.$client.name, this.writeTurn, () => this.turnHandedBack());
      this.db.$client.pragma('wal_autocheckpoint = 0');
    }
    return (await pass.maintenance).run(operation);
  }

  private turnHandedBack(): void {
    if (!this.flushWhenFree) return;
    this.flushWhenFree = false;
    this.flushWrites();
  }

  /**
   * One process per database file: nobody else can be running the pass. While it runs, its writes are made on a thread
   * of its own (`SqliteMaintenance`), which also takes over this connection's WAL checkpoints: they copy pages into
   * the database file and fsync it, tens of milliseconds on the event loop when a purge fills the WAL.
   */
  async exclusively<T>(_name: 'retention', work: () => Promise<T>): Promise<T | undefined> {
    const client = this.db.$client;
    if (client.memory || this.retentionPass) return work();
    const pass: RetentionPass = {};
    const checkpointPages = client.pragma('wal_autocheckpoint', { simple: true }) as number;
    // During the pass the WAL holds a few seconds of its writes between the thread's checkpoints: cutting the file back
    // each time would only make it grow again, every fsync then writing its new length as well.
    client.pragma('journal_size_limit = -1');
    this.retentionPass = pass;
    try {
      return await work();
    } finally {
      this.retentionPass = undefined;
      if (pass.maintenance) {
        const maintenance = await pass.maintenance.catch(() => undefined);
        await maintenance?.close();
      }
      if (client.open) {
        client.pragma(`wal_autocheckpoint = ${checkpointPages}`);
        client.pragma(`journal_size_limit = ${walSizeLimit}`);
      }
      this.turnHandedBack();
    }
  }

  async eraseRecipient(request: ErasureRequest): Promise<number> {
    const erased = await this.write(() => {
      // A scan of every row: an address may sit anywhere in a list or a payload. Erasures are rare.
      const candidates = this.prepared(
        `select id, recipient, payload, idempotency_key as idempotencyKey, last_error_message as lastErrorMessage
         from deliveries where instr(lower(recipient), ?) > 0 or instr(lower(payload), ?) > 0`,
      ).all(request.address, request.address) as (Pick<DeliveryRow, 'id' | 'recipient' | 'payload' | 'idempotencyKey' | 'lastErrorMessage'>)[];
      let count = 0;
      for (const row of candidates) {
        const effect = erasureEffect(row, request);
        if (!effect) continue;
        this.prepared(
          `update deliveries set recipient = ?, idempotency_key = ?, last_error_message = ?, payload = ?, sealed_secrets = null,
             request_hash = null, content_redacted_at = coalesce(content_redacted_at, ?), updated_at = ?,
             status = case when status in ('QUEUED', 'RETRYING') then 'CANCELLED' else status end,
             next_attempt_at = case when status in ('QUEUED', 'RETRYING') then null else next_attempt_at end
           where id = ?`,
        ).run(effect.recipient, effect.idempotencyKey, effect.lastErrorMessage, redactedPayload, request.now, request.now, row.id);
        const attempts = this.prepared('select id, provider_message as message from delivery_attempts where delivery_id = ?').all(row.id) as {
          id: number;
          message: string | null;
        }[];
        for (const attempt of attempts) {
          this.prepared('update delivery_attempts set recipient = ?, provider_message = ? where id = ?').run(
            effect.recipient,
            attempt.message == null ? null : scrubbed(attempt.message, request),
            attempt.id,
          );
        }
        count += 1;
      }
      return count;
    });
    // The old pages stay in the write-ahead log until a checkpoint copies the new ones over them: one now, if no reader
    // holds an older snapshot (otherwise SQLite's own checkpoints do it soon).
    if (erased > 0 && !this.db.$client.memory) this.db.$client.pragma('wal_checkpoint(TRUNCATE)');
    return erased;
  }

  async findTokenByHash(tokenHash: string) {
    return this.prepared(`select ${tokenColumns} from api_tokens where token_hash = ?`).get(tokenHash) as ApiTokenRow | undefined;
  }

  async insertToken(row: ApiTokenRow) {
    this.db.insert(apiTokens).values(row).run();
  }

  async listTokens() {
    return this.db.select().from(apiTokens).orderBy(asc(apiTokens.createdAt)).all();
  }

  async revokeToken(nameOrId: string, now: number) {
    const result = this.db
      .update(apiTokens)
      .set({ revokedAt: now })
      .where(and(or(eq(apiTokens.name, nameOrId), eq(apiTokens.id, nameOrId)), isNull(apiTokens.revokedAt)))
      .run();
    return result.changes > 0;
  }

  async touchToken(id: string, now: number) {
    this.db.update(apiTokens).set({ lastUsedAt: now }).where(eq(apiTokens.id, id)).run();
  }

  async settingOnce(name: string, value: string) {
    return this.write(() => {
      this.prepared('insert into gateway_settings (name, value) values (?, ?) on conflict (name) do nothing').run(name, value);
      return (this.prepared('select value from gateway_settings where name = ?').get(name) as { value: string }).value;
    });
  }

  async probeWrite() {
    // Bigger than a page, so that it needs pages the file may not have room for; deleted in the same transaction.
    await this.write(() => {
      this.prepared('insert into gateway_settings (name, value) values (?, ?)').run(probeName, probeFiller);
      this.prepared('delete from gateway_settings where name = ?').run(probeName);
    });
  }

  async ping() {
    try {
      this.db.$client.prepare('select 1').get();
      return true;
    } catch {
      return false;
    }
  }

  async migrationsCurrent() {
    return migrationsCurrent(this.db);
  }

  async close() {
    // A pass still under way (its caller did not stop it first) loses its thread; it fails, the writes do not.
    const maintenance = await this.retentionPass?.maintenance?.catch(() => undefined);
    await maintenance?.close();
    // Writes still waiting for their turn are committed (or failed) and made durable before the connection goes.
    if (this.db.$client.open) this.flushWrites({ now: true });
    await this.syncing;
    if (this.db.$client.open) this.db.$client.close();
    if (this.walFd !== undefined) fs.closeSync(this.walFd);
    this.walFd = undefined;
  }
}
