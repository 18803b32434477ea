import crypto from 'node:crypto';
import { and, asc, eq, isNull, or } from 'drizzle-orm';
import pg from 'pg';
import type { Logger } from '../logger';
import { columnNames, selectList } from './columns';
import { PostgresChangeFeed } from './postgres-change-feed';
import { connectionSettings, createPool, drizzleFor, migratePostgres, postgresMigrationsCurrent, withPoolClient, type PgDb } from './postgres-client';
import { apiTokens, deliveries, deliveryAttempts } from './postgres-schema';
import type { ApiTokenRow, AttemptRow, ChannelName, DeliveryRow, NewDeliveryRow } from './schema';
import {
  reservationId,
  type ChannelCount,
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
import {
  attemptEffect,
  deferredEffect,
  digestOutcomeEffect,
  erasureEffect,
  finalStatusesSql,
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

const deliveryNames = columnNames(deliveries);
const attemptNames = columnNames(deliveryAttempts);
const deliveryColumns = selectList(deliveryNames);
const attemptColumns = selectList(attemptNames);
/** The number of a delivery's last recorded attempt, beside its row (attempt numbers continue from it). */
const lastNumberColumn = '(select max(number) from delivery_attempts a where a.delivery_id = deliveries.id) as "lastNumber"';
type LastNumber = { lastNumber: number | null };
const insertColumns = [...deliveryNames.values()].map((name) => `"${name}"`).join(', ');
const insertParams = [...deliveryNames.keys()].map((_key, index) => `$${index + 1}`).join(', ');

/** Session advisory lock keys of the passes only one replica runs at a time: "notify-gateway retention". */
const exclusiveKeys = { retention: 7_236_142_198_411_530_917n } as const;

/** SQLSTATEs after which a transaction can simply run again. */
const retryable = new Set(['40001', '40P01']);

export interface PostgresStoreOptions {
  url: string;
  poolSize: number;
  logger?: Logger;
  /** Tells this process's writes apart in the change feed and in pg_stat_activity; random when omitted. */
  replicaId?: string;
}

type Queryable = pg.Pool | pg.PoolClient;

/**
 * The store on a PostgreSQL server shared by several gateway replicas. Every decision that is not storage comes from
 * store-rules.ts, as in the SQLite store; what differs is how replicas are kept apart: claims with FOR UPDATE SKIP
 * LOCKED, limits and pacing under transaction-scoped advisory locks (one recipient at a time, across replicas), and a
 * unique index for idempotency. PostgreSQL commits durably (synchronous_commit) and groups concurrent commits itself.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly shared = true;
  readonly db: PgDb;

  private constructor(
    readonly pool: pg.Pool,
    readonly changes: PostgresChangeFeed,
    private readonly logger?: Logger,
    private readonly connection?: pg.ClientConfig,
  ) {
    this.db = drizzleFor(pool);
  }

  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const replicaId = options.replicaId ?? crypto.randomBytes(4).toString('hex');
    const applicationName = `notify-gateway ${replicaId}`;
    const pool = createPool({ url: options.url, poolSize: options.poolSize, applicationName });
    // An idle connection whose server went away reports here; unhandled, it would end the process.
    pool.on('error', (error) => options.logger?.warn({ err: error }, 'PostgreSQL connection lost; the pool reconnects on demand'));
    try {
      await migratePostgres(pool);
      const changes = new PostgresChangeFeed(pool, { url: options.url, applicationName, replicaId }, options.logger);
      await changes.start();
      return new PostgresStore(pool, changes, options.logger, connectionSettings({ url: options.url, applicationName }));
    } catch (error) {
      await pool.end().catch(() => {});
      throw error;
    }
  }

  get replicaId(): string {
    return this.changes.replicaId;
  }

  /** Runs `work` in one transaction on one connection; runs it again after a serialization failure or deadlock. */
  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await withPoolClient(this.pool, async (client, broken) => {
        try {
          await client.query('begin');
          const result = await work(client);
          await client.query('commit');
          return { result };
        } catch (error) {
          await client.query('rollback').catch(broken);
          if (retryable.has((error as { code?: string }).code ?? '') && attempt < 5) return undefined;
          throw error;
        }
      });
      if (outcome) return outcome.result;
    }
  }

  /** A transaction-scoped advisory lock on a text key: held until commit or rollback, by one transaction at a time. */
  private async lock(client: pg.PoolClient, key: string): Promise<void> {
    await client.query({ name: 'lock', text: 'select pg_advisory_xact_lock(hashtextextended($1, 0))', values: [key] });
  }

  async insertDelivery(row: NewDeliveryRow, limits: RecipientLimit[] = []): Promise<InsertOutcome> {
    const values = [...deliveryNames.keys()].map((key) => (row as Record<string, unknown>)[key] ?? (key === 'attempts' ? 0 : null));
    if (limits.length === 0) {
      // One statement, committed on its own. Two requests with one idempotency key: the unique index makes the second
      // wait for the first and then insert nothing; it reads the first one's row instead.
      const created = await this.insertRow(this.pool, values);
      if (created) return { kind: 'created', delivery: created };
      return { kind: 'existing', delivery: await this.existing(this.pool, row) };
    }
    return this.transaction(async (client) => {
      // Every replica takes the same locks in the same order before counting: the counts cannot be raced.
      const keys = [...new Set(limits.map((limit) => limitLockKey(limit, row)))].sort();
      for (const key of keys) await this.lock(client, key);
      if (row.idempotencyKey != null) {
        const found = await this.findByKey(client, row.callerId, row.idempotencyKey);
        if (found) return { kind: 'existing', delivery: found };
      }
      for (const limit of limits) {
        const since = limitWindowStart(limit, row.createdAt);
        const { rows } = await client.query<{ used: number; oldest: number | null }>(
          limit.scope === 'caller'
            ? {
                name: 'limit-caller',
                text: 'select count(*) as used, min(created_at) as oldest from deliveries where caller_id = $1 and created_at > $2',
                values: [row.callerId, since],
              }
            : {
                name: 'limit-recipient',
                text: `select count(*) as used, min(created_at) as oldest from deliveries
                       where recipient = $1 and channel = $2 and created_at > $3 and status <> 'CANCELLED'`,
                values: [row.recipient, row.channel, since],
              },
        );
        const retryAfterMs = limitRetryAfterMs(limit, rows[0].used, rows[0].oldest, row.createdAt);
        if (retryAfterMs !== undefined) return { kind: 'limited', retryAfterMs, limit };
      }
      const created = await this.insertRow(client, values);
      if (created) return { kind: 'created', delivery: created };
      return { kind: 'existing', delivery: await this.existing(client, row) };
    });
  }

  private async insertRow(client: Queryable, values: unknown[]): Promise<DeliveryRow | undefined> {
    const { rows } = await client.query<DeliveryRow>({
      name: 'insert-delivery',
      text: `insert into deliveries (${insertColumns}) values (${insertParams})
             on conflict (caller_id, idempotency_key) do nothing returning ${deliveryColumns}`,
      values,
    });
    return rows[0];
  }

  private async findByKey(client: Queryable, callerId: string, key: string): Promise<DeliveryRow | undefined> {
    const { rows } = await client.query<DeliveryRow>({
      name: 'delivery-by-key',
      text: `select ${deliveryColumns} from deliveries where caller_id = $1 and idempotency_key = $2`,
      values: [callerId, key],
    });
    return rows[0];
  }

  private async existing(client: Queryable, row: NewDeliveryRow): Promise<DeliveryRow> {
    const found = row.idempotencyKey != null ? await this.findByKey(client, row.callerId, row.idempotencyKey) : undefined;
    if (!found) throw new Error(`delivery ${row.id} was neither inserted nor found by its idempotency key`);
    return found;
  }

  async getDelivery(id: string): Promise<DeliveryRow | undefined> {
    const { rows } = await this.pool.query<DeliveryRow>({
      name: 'delivery',
      text: `select ${deliveryColumns} from deliveries where id = $1`,
      values: [id],
    });
    return rows[0];
  }

  async getDeliveries(ids: readonly string[]) {
    if (ids.length === 0) return [];
    const { rows } = await this.pool.query<DeliveryRow>({
      name: 'deliveries-by-id',
      text: `select ${deliveryColumns} from deliveries where id = any($1::text[])`,
      values: [ids],
    });
    return rows;
  }

  async listDeliveries(filter: DeliveryFilter, page: KeysetPage) {
    const conditions: string[] = [];
    const values: unknown[] = [];
    const where = (condition: (...params: string[]) => string, ...params: unknown[]) => {
      conditions.push(condition(...params.map((value) => `$${values.push(value)}`)));
    };
    if (filter.channel) where((p) => `channel = ${p}`, filter.channel);
    if (filter.status) where((p) => `status = ${p}`, filter.status);
    if (filter.recipient !== undefined) where((p) => `recipient = ${p}`, filter.recipient);
    if (filter.callerId !== undefined) where((p) => `caller_id = ${p}`, filter.callerId);
    if (filter.createdAfter !== undefined) where((p) => `created_at > ${p}`, filter.createdAfter);
    if (filter.createdBefore !== undefined) where((p) => `created_at < ${p}`, filter.createdBefore);
    if (page.after) where((a, b) => `(created_at, id) < (${a}, ${b})`, page.after.createdAt, page.after.id);
    if (page.before) where((a, b) => `(created_at, id) > (${a}, ${b})`, page.before.createdAt, page.before.id);
    const order = page.inverted ? 'asc' : 'desc';
    const text = `select ${deliveryColumns} from deliveries${conditions.length > 0 ? ` where ${conditions.join(' and ')}` : ''}
      order by created_at ${order}, id ${order} limit $${values.push(page.limit)}`;
    // Unnamed, so planned for these values each time: a prepared statement would turn to a generic plan after five
    // runs, and for a recipient that plan reads every row of the recipient's to sort them (a busy mailbox: thousands).
    const { rows } = await this.pool.query<DeliveryRow>({ text, values });
    return rows;
  }

  async listAttempts(deliveryId: string) {
    const { rows } = await this.pool.query<AttemptRow>({
      name: 'attempts',
      text: `select ${attemptColumns} from delivery_attempts where delivery_id = $1 order by number`,
      values: [deliveryId],
    });
    return rows;
  }

  async claimDue(now: number, limit: number, leaseUntil: number) {
    // One statement: the rows the sub-select locks stay locked by the UPDATE's transaction, and rows another replica is
    // claiming at this moment are skipped, not waited for. Literal statuses let the planner use the partial index.
    const { rows } = await this.pool.query<DeliveryRow>({
      name: 'claim-due',
      text: `update deliveries set status = 'SENDING', claimed_until = $2, updated_at = $1
             where id in (
               select id from deliveries
               where status in ('QUEUED', 'RETRYING') and next_attempt_at <= $1
               order by next_attempt_at limit $3
               for update skip locked)
             returning ${deliveryColumns}`,
      values: [now, leaseUntil, limit],
    });
    return rows;
  }

  async releaseClaims(now: number, maxAttempts: number, which: 'all' | 'lapsed') {
    return this.transaction(async (client) => {
      // Skips rows another replica is releasing (or finishing) right now; 500 at a time, the rest on the next pass.
      const { rows: caught } = await client.query<DeliveryRow & LastNumber>({
        name: `caught-${which}`,
        text: `select ${deliveryColumns}, ${lastNumberColumn} from deliveries
               where status = 'SENDING'${which === 'lapsed' ? ' and claimed_until < $1' : ''}
               order by claimed_until limit 500 for update skip locked`,
        values: which === 'lapsed' ? [now] : [],
      });
      const released: DeliveryRow[] = [];
      for (const { lastNumber, ...delivery } of caught) {
        const { attempt, changes } = interruptedEffect(delivery, lastNumber, now, maxAttempts);
        released.push((await this.recordAttempt(client, delivery.id, attempt.number, attempt, changes, attempt.number))!);
      }
      return released;
    });
  }

  async reservePacingSlot(request: PacingRequest, decide: (window: PacingWindow) => number | undefined): Promise<PacingOutcome> {
    const { channel, recipient, deliveryId, number, now } = request;
    return this.transaction(async (client) => {
      // One recipient's reservations are decided one at a time, whichever replica asks.
      await this.lock(client, `pacing:${channel}:${recipient}`);
      const { rows } = await client.query<{ ends: number[]; underway: number; mutedAt: number | null; turns: number[] }>({
        name: 'pacing-window',
        text: `with expired as (
                 delete from pacing_reservations where channel = $1 and recipient = $2 and expires_at <= $3)
               select
                 array(select (started_at + duration_ms)::float8 as ended from delivery_attempts
                       where channel = $1 and recipient = $2 and started_at >= $7 and started_at + duration_ms >= $4
                       order by ended) as ends,
                 (select count(*) from pacing_reservations
                  where channel = $1 and recipient = $2 and expires_at > $3) as underway,
                 (select max(started_at) from delivery_attempts
                  where channel = $1 and recipient = $2 and started_at >= $5 and outcome = 'RATE_LIMITED') as "mutedAt",
                 array(select next_attempt_at::float8 from deliveries
                       where recipient = $2 and status in ('QUEUED', 'RETRYING') and next_attempt_at >= $4
                         and channel = $1 and next_attempt_at > created_at and id <> $6) as turns`,
        values: [channel, recipient, now, now - request.windowMs, now - request.muteMs, deliveryId, now - request.windowMs - request.longestAttemptMs],
      });
      const window = rows[0];
      const turn = decide({
        attemptEnds: window.ends,
        underway: window.underway,
        mutedAt: window.mutedAt ?? undefined,
        turns: window.turns,
      });
      if (turn === undefined) {
        await client.query({
          name: 'reserve',
          text: 'insert into pacing_reservations (id, channel, recipient, reserved_at, expires_at) values ($1, $2, $3, $4, $5)',
          values: [reservationId(deliveryId, number), channel, recipient, now, request.expiresAt],
        });
        return { reserved: true };
      }
      return { reserved: false, turn, delivery: await this.update(client, deliveryId, deferredEffect(turn, now), ['SENDING']) };
    });
  }

  async finishAttempt(deliveryId: string, attempt: NewAttempt, patch: DeliveryPatch, claimedUntil?: number) {
    if (claimedUntil !== undefined) {
      // The usual case in one statement, no transaction to hold open: the write checks what the rule assumes.
      const { number, changes } = heldAttemptEffect(attempt, patch);
      const recorded = await this.recordAttempt(this.pool, deliveryId, number, attempt, changes, number, claimedUntil);
      if (recorded) return recorded;
    }
    return this.transaction(async (client) => {
      // The row locked until commit, and the last attempt number with it: one round trip.
      const { rows } = await client.query<DeliveryRow & LastNumber>({
        name: 'delivery-for-attempt',
        text: `select ${deliveryColumns}, ${lastNumberColumn} from deliveries where id = $1 for update`,
        values: [deliveryId],
      });
      const found = rows[0];
      if (!found) throw new Error(`delivery ${deliveryId} vanished during an attempt`);
      const { lastNumber, ...current } = found;
      const { number, changes } = attemptEffect(current, lastNumber, attempt, patch, claimedUntil);
      return (await this.recordAttempt(client, deliveryId, number, attempt, changes, attempt.number))!;
    });
  }

  /**
   * Inserts the attempt, ends its pacing reservation and updates the delivery: one statement. With `heldBy`, only while
   * the delivery is SENDING under that claim with nothing recorded from `number` on (what `heldAttemptEffect`
   * assumes); undefined when it is not.
   */
  private async recordAttempt(
    client: Queryable,
    deliveryId: string,
    number: number,
    attempt: NewAttempt,
    changes: DeliveryPatch & { updatedAt: number },
    reservedAs: number,
    heldBy?: number,
  ): Promise<DeliveryRow | undefined> {
    const values: unknown[] = [
      deliveryId,
      number,
      attempt.startedAt,
      attempt.durationMs,
      attempt.outcome,
      attempt.providerCode,
      attempt.providerMessage,
      reservationId(deliveryId, reservedAs),
    ];
    const assignments = patchEntries(changes).map(([key, value]) => `"${deliveryNames.get(key)}" = $${values.push(value)}`);
    const held =
      heldBy === undefined
        ? ''
        : ` and status = 'SENDING' and claimed_until = $${values.push(heldBy)} and attempts < $2
            and not exists (select 1 from delivery_attempts where delivery_id = $1 and number >= $2)`;
    const text = `with updated as (
        update deliveries set ${assignments.join(', ')} where id = $1${held} returning ${deliveryColumns}),
      attempt as (
        insert into delivery_attempts (delivery_id, number, channel, recipient, provider, started_at, duration_ms, outcome,
          provider_code, provider_message)
        select $1, $2, "channel", "recipient", "provider", $3, $4, $5, $6, $7 from updated),
      reservation as (delete from pacing_reservations where id = $8 and exists (select 1 from updated))
      select * from updated`;
    const { rows } = await client.query<DeliveryRow>({ name: `record:${hash(text)}`, text, values });
    return rows[0];
  }

  private async update(
    client: Queryable,
    id: string,
    patch: DeliveryPatch & { updatedAt: number },
    fromStatuses?: readonly DeliveryRow['status'][],
  ): Promise<DeliveryRow | undefined> {
    const values: unknown[] = [id];
    const assignments = patchEntries(patch).map(([key, value]) => `"${deliveryNames.get(key)}" = $${values.push(value)}`);
    const statuses = fromStatuses ? ` and status = any($${values.push(fromStatuses)}::text[])` : '';
    const text = `update deliveries set ${assignments.join(', ')} where id = $1${statuses} returning ${deliveryColumns}`;
    const { rows } = await client.query<DeliveryRow>({ name: `update:${hash(text)}`, text, values });
    return rows[0];
  }

  async foldDigest(request: FoldRequest, choose: (waiting: DeliveryRow[]) => string[]): Promise<DeliveryRow[]> {
    const { channel, recipient, carrierId, claimedUntil, now } = request;
    return this.transaction(async (client) => {
      // One fold per recipient at a time, whichever replica folds; the rows read are locked against claims (claimDue
      // skips locked rows, and a row it holds is skipped here), so no delivery is folded twice or folded and sent alone.
      await this.lock(client, `digest:${channel}:${recipient}`);
      const { rows: waiting } = await client.query<DeliveryRow>({
        name: 'digest-waiting',
        text: `select ${deliveryColumns} from deliveries
               where recipient = $1 and status in ('QUEUED', 'RETRYING') and channel = $2 and id <> $3
               order by created_at, id limit $4 for update skip locked`,
        values: [recipient, channel, carrierId, request.limit],
      });
      if (waiting.length <= request.threshold) return [];
      const chosen = new Set(choose(waiting));
      if (chosen.size === 0) return [];
      const { rows: carrier } = await client.query<{ id: string }>({
        name: 'digest-carrier',
        text: `update deliveries set digest_id = $1, updated_at = $3
               where id = $1 and status = 'SENDING' and claimed_until = $2 returning id`,
        values: [carrierId, claimedUntil, now],
      });
      if (carrier.length === 0) throw new Error(`delivery ${carrierId} is no longer held by this attempt`);
      const ids = waiting.filter((delivery) => chosen.has(delivery.id)).map((delivery) => delivery.id);
      const values: unknown[] = [ids];
      const assignments = patchEntries(foldedEffect(carrierId, claimedUntil, now)).map(
        ([key, value]) => `"${deliveryNames.get(key)}" = $${values.push(value)}`,
      );
      const { rows } = await client.query<DeliveryRow>({
        name: 'digest-fold',
        text: `update deliveries set ${assignments.join(', ')}
               where id = any($1::text[]) and status in ('QUEUED', 'RETRYING') returning ${deliveryColumns}`,
        values,
      });
      return rows.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
    });
  }

  private async unfoldCarrier(client: pg.PoolClient, carrierId: string): Promise<DeliveryRow[]> {
    await client.query({ name: 'digest-unfold-carrier', text: 'update deliveries set digest_id = null where id = $1', values: [carrierId] });
    return [];
  }

  async settleDigest(carrierId: string, sent: boolean, now: number): Promise<DeliveryRow[]> {
    return this.transaction(async (client) => {
      if (!sent) await this.unfoldCarrier(client, carrierId);
      const values: unknown[] = [carrierId];
      const assignments = patchEntries(digestOutcomeEffect(sent, now)).map(
        ([key, value]) => `"${deliveryNames.get(key)}" = $${values.push(value)}`,
      );
      const text = `update deliveries set ${assignments.join(', ')}
                    where digest_id = $1 and id <> $1 and status = 'SENDING' returning ${deliveryColumns}`;
      const { rows } = await client.query<DeliveryRow>({ name: `digest-settle:${hash(text)}`, text, values });
      return rows;
    });
  }

  async listFolded(carrierId: string): Promise<DeliveryRow[]> {
    const { rows } = await this.pool.query<DeliveryRow>({
      name: 'digest-folded',
      text: `select ${deliveryColumns} from deliveries where digest_id = $1 order by created_at, id`,
      values: [carrierId],
    });
    return rows;
  }

  async transition(id: string, fromStatuses: readonly DeliveryRow['status'][], patch: DeliveryPatch) {
    return this.update(this.pool, id, { ...patch, updatedAt: Date.now() }, fromStatuses);
  }

  async countByStatus(): Promise<StatusCount[]> {
    const { rows } = await this.pool.query<StatusCount>(
      'select channel, status, count(*)::int as count from deliveries group by channel, status',
    );
    return rows;
  }

  async oldestPendingCreatedAt() {
    const { rows } = await this.pool.query<{ oldest: number | null }>({
      name: 'oldest-pending',
      text: `select min(created_at) as oldest from deliveries where status in ('QUEUED', 'RETRYING', 'SENDING')`,
    });
    return rows[0].oldest ?? undefined;
  }

  async countPending(): Promise<ChannelCount[]> {
    const { rows } = await this.pool.query<ChannelCount>({
      name: 'count-pending',
      text: `select channel, count(*)::int as count from deliveries
             where status in ('QUEUED', 'RETRYING', 'SENDING') group by channel`,
    });
    return rows;
  }

  async deliveryStats({ from, to, bucketMs, channel, callerId }: StatsQuery): Promise<StatsRow[]> {
    if (!Number.isSafeInteger(bucketMs) || bucketMs <= 0) throw new RangeError('bucketMs must be a positive integer');
    // Counted by the server in one pass (the event loop only waits for the answer); creation times are never negative,
    // so integer division is the floor.
    const { rows } = await this.pool.query<StatsRow>({
      name: 'delivery-stats',
      text: `select (created_at / $3::bigint) * $3::bigint as "bucketStart", channel, status, count(*)::int as count
             from deliveries
             where created_at >= $1 and created_at < $2
               and ($4::text is null or channel = $4) and ($5::text is null or caller_id = $5)
             group by 1, channel, status
             order by 1, channel, status`,
      values: [from, to, bucketMs, channel ?? null, callerId ?? null],
    });
    return rows.map((row) => ({ ...row, channel: row.channel as ChannelName }));
  }

  async purgeFinal(before: number, limit: number): Promise<RetentionStep> {
    // Rows another replica (or a late attempt) holds are skipped, never waited for; attempts go by ON DELETE CASCADE.
    const started = performance.now();
    const { rows } = await this.pool.query<{ purged: number }>({
      name: 'purge-final',
      text: `with doomed as (
               select id from deliveries where created_at < $1 and status in ${finalStatusesSql}
               order by created_at limit $2 for update skip locked),
             gone as (delete from deliveries where id in (select id from doomed) returning id),
             unlinked as (
               update deliveries set digest_id = null
               where digest_id in (select id from gone) and id not in (select id from gone))
             select count(*)::int as purged from gone`,
      values: [before, limit],
    });
    return { count: rows[0].purged, transactionMs: performance.now() - started };
  }

  async redactContent(before: number, limit: number, now: number): Promise<RetentionStep> {
    const started = performance.now();
    const result = await this.pool.query({
      name: 'redact-content',
      text: `update deliveries set payload = $1, sealed_secrets = null, content_redacted_at = $2
             where id in (
               select id from deliveries
               where content_redacted_at is null and created_at < $3 and status in ${finalStatusesSql}
               order by created_at limit $4 for update skip locked)`,
      values: [redactedPayload, now, before, limit],
    });
    return { count: result.rowCount ?? 0, transactionMs: performance.now() - started };
  }

  async exclusively<T>(name: 'retention', work: () => Promise<T>): Promise<T | undefined> {
    // A session lock on a connection of its own, outside the pool: `work` can use every pooled connection (a pool of
    // one would otherwise wait for itself), and a lock whose session breaks ends with the session, never handed on.
    const client = new pg.Client(this.connection);
    client.on('error', (error) => this.logger?.warn({ err: error }, `the ${name} lock's connection was lost`));
    await client.connect();
    try {
      const key = exclusiveKeys[name].toString();
      const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [key]);
      if (!rows[0].locked) return undefined;
      return await work();
    } finally {
      // Ending the session releases its advisory locks.
      await client.end().catch(() => {});
    }
  }

  async reclaimSpace(): Promise<RetentionStep> {
    // Autovacuum makes the space of deleted rows reusable; the files do not shrink (VACUUM FULL would lock the table).
    return nothingToRetain;
  }

  async eraseRecipient(request: ErasureRequest): Promise<number> {
    return this.transaction(async (client) => {
      // A scan of every row: an address may sit anywhere in a list or a payload. Erasures are rare.
      const { rows: candidates } = await client.query<Pick<DeliveryRow, 'id' | 'recipient' | 'payload' | 'idempotencyKey' | 'lastErrorMessage'>>(
        `select id, recipient, payload, idempotency_key as "idempotencyKey", last_error_message as "lastErrorMessage"
         from deliveries where strpos(lower(recipient), $1) > 0 or strpos(lower(payload), $1) > 0 for update`,
        [request.address],
      );
      let count = 0;
      for (const row of candidates) {
        const effect = erasureEffect(row, request);
        if (!effect) continue;
        await client.query(
          `update deliveries set recipient = $1, idempotency_key = $2, last_error_message = $3, payload = $4, sealed_secrets = null,
             request_hash = null, content_redacted_at = coalesce(content_redacted_at, $5), updated_at = $5,
             status = case when status in ('QUEUED', 'RETRYING') then 'CANCELLED' else status end,
             next_attempt_at = case when status in ('QUEUED', 'RETRYING') then null else next_attempt_at end
           where id = $6`,
          [effect.recipient, effect.idempotencyKey, effect.lastErrorMessage, redactedPayload, request.now, row.id],
        );
        const { rows: attempts } = await client.query<{ id: number; message: string | null }>(
          'select id, provider_message as message from delivery_attempts where delivery_id = $1',
          [row.id],
        );
        for (const attempt of attempts) {
          await client.query('update delivery_attempts set recipient = $1, provider_message = $2 where id = $3', [
            effect.recipient,
            attempt.message == null ? null : scrubbed(attempt.message, request),
            attempt.id,
          ]);
        }
        count += 1;
      }
      return count;
    });
  }

  async findTokenByHash(tokenHash: string) {
    const { rows } = await this.pool.query<ApiTokenRow>({
      name: 'token-by-hash',
      text: `select id, name, token_hash as "tokenHash", scopes, created_at as "createdAt", revoked_at as "revokedAt",
               last_used_at as "lastUsedAt" from api_tokens where token_hash = $1`,
      values: [tokenHash],
    });
    return rows[0];
  }

  async insertToken(row: ApiTokenRow) {
    await this.db.insert(apiTokens).values(row);
  }

  async listTokens() {
    return this.db.select().from(apiTokens).orderBy(asc(apiTokens.createdAt));
  }

  async revokeToken(nameOrId: string, now: number) {
    const revoked = await this.db
      .update(apiTokens)
      .set({ revokedAt: now })
      .where(and(or(eq(apiTokens.name, nameOrId), eq(apiTokens.id, nameOrId)), isNull(apiTokens.revokedAt)))
      .returning({ id: apiTokens.id });
    return revoked.length > 0;
  }

  async touchToken(id: string, now: number) {
    await this.db.update(apiTokens).set({ lastUsedAt: now }).where(eq(apiTokens.id, id));
  }

  async settingOnce(name: string, value: string) {
    // Two statements: one statement's snapshot cannot see a row another replica committed while the insert waited on it.
    await this.pool.query('insert into gateway_settings (name, value) values ($1, $2) on conflict (name) do nothing', [name, value]);
    const { rows } = await this.pool.query<{ value: string }>('select value from gateway_settings where name = $1', [name]);
    return rows[0].value;
  }

  async probeWrite() {
    // A transaction that writes and commits: its commit record is flushed to the WAL like any delivery's.
    await this.transaction(async (client) => {
      await client.query("insert into gateway_settings (name, value) values ('store-probe', $1) on conflict (name) do nothing", [
        String(Date.now()),
      ]);
      await client.query("delete from gateway_settings where name = 'store-probe'");
    });
  }

  async ping() {
    try {
      await this.pool.query('select 1');
      return true;
    } catch {
      return false;
    }
  }

  async migrationsCurrent() {
    return postgresMigrationsCurrent(this.pool);
  }

  async close() {
    await this.changes.close();
    await this.pool.end();
  }
}

/** Two sends counted by the same limit take the same lock: one token, or one recipient on one channel. */
function limitLockKey(limit: RecipientLimit, row: NewDeliveryRow): string {
  return limit.scope === 'caller' ? `limit:caller:${row.callerId}` : `limit:${row.channel}:${row.recipient}`;
}

function hash(text: string): string {
  return crypto.createHash('sha1').update(text).digest('base64url').slice(0, 16);
}
