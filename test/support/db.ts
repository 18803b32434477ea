import fs from 'node:fs';
import { describe } from 'vitest';
import { fullScopes, hashToken, type TokenScopes } from '../../src/auth';
import type { ChannelName, DeliveryStatus } from '../../src/db/schema';
import type { PostgresStore } from '../../src/db/postgres-store';
import type { SqliteStore } from '../../src/db/sqlite-store';
import type { Store, StoreKind } from '../../src/db/store';
import * as gateways from './gateway';
import type { TestGateway, TestGatewayOptions } from './gateway';
import { postgresAvailable } from './postgres';

/**
 * The SQL tests run behind the API's back, in one place: each helper has one implementation per store (SQLite through
 * better-sqlite3, PostgreSQL through the store's pool), so a suite can run unchanged on both.
 */

/** A gateway on either store. */
export type AnyGateway = TestGateway<Store>;
/** Anything holding a store: a gateway, or a store itself. */
type HasStore = { store: Store } | Store;

export const storeKinds = ['sqlite', 'postgres'] as const satisfies readonly StoreKind[];

/** True when suites on this store must be skipped (PostgreSQL without a server; never SQLite). */
export const storeUnavailable = (kind: StoreKind): boolean => kind === 'postgres' && !postgresAvailable();

/** A gateway on `kind`, with its own data folder (outbox, key file) either way. */
export async function startGatewayOn(kind: StoreKind, options: TestGatewayOptions = {}): Promise<AnyGateway> {
  return kind === 'sqlite' ? gateways.startGateway({ ...options, store: 'sqlite' }) : gateways.startGateway({ ...options, store: 'postgres' });
}

// gateway.ts's mutationResult only uses the API, whatever the store: typed here for gateways on either.
export const mutationResult = (gateway: AnyGateway, ...rest: Parameters<typeof gateways.mutationResult> extends [unknown, ...infer R] ? R : never) =>
  gateways.mutationResult(gateway as unknown as TestGateway, ...rest);

function storeOf(holder: HasStore): Store {
  return 'kind' in holder ? holder : holder.store;
}

/** Runs the SQLite or the PostgreSQL version of a statement, on the holder's own connection(s). */
async function on<T>(
  holder: HasStore,
  ways: { sqlite: (client: SqliteStore['db']['$client']) => T; postgres: (pool: PostgresStore['pool']) => Promise<T> },
): Promise<T> {
  const store = storeOf(holder);
  if (store.kind === 'sqlite') return ways.sqlite((store as SqliteStore).db.$client);
  return ways.postgres((store as PostgresStore).pool);
}

export interface DeliveryMatch {
  channel?: ChannelName;
  recipient?: string;
  idempotencyKey?: string;
}

/** The WHERE clause for `match` (column names are the same in both stores), with `?` or `$n` placeholders. */
function whereOf(match: DeliveryMatch, placeholder: (n: number) => string): { sql: string; values: unknown[] } {
  const columns: [string, unknown][] = [
    ['channel', match.channel],
    ['recipient', match.recipient],
    ['idempotency_key', match.idempotencyKey],
  ];
  const used = columns.filter(([, value]) => value !== undefined);
  return {
    sql: used.length === 0 ? '' : ` where ${used.map(([column], index) => `${column} = ${placeholder(index + 1)}`).join(' and ')}`,
    values: used.map(([, value]) => value),
  };
}

/** How many delivery rows there are (that match). */
export function countDeliveries(holder: HasStore, match: DeliveryMatch = {}): Promise<number> {
  return on(holder, {
    sqlite: (client) => {
      const { sql, values } = whereOf(match, () => '?');
      return (client.prepare(`select count(*) as n from deliveries${sql}`).get(...values) as { n: number }).n;
    },
    postgres: async (pool) => {
      const { sql, values } = whereOf(match, (n) => `$${n}`);
      return (await pool.query<{ n: number }>(`select count(*)::int as n from deliveries${sql}`, values)).rows[0].n;
    },
  });
}

/** Every delivery row, every column, as the database holds it (snake_case names; what a dump would show). */
export function rawDeliveryRows(holder: HasStore): Promise<Record<string, unknown>[]> {
  return on(holder, {
    sqlite: (client) => client.prepare('select * from deliveries order by id').all() as Record<string, unknown>[],
    postgres: async (pool) => (await pool.query('select * from deliveries order by id')).rows,
  });
}

/**
 * Everything the database holds, as bytes, the way a stolen disk or backup would show it. SQLite: the database file and
 * its write-ahead log (after moving the log into the file and truncating it, with `checkpoint`). PostgreSQL: every
 * live row of every table, as text (a dump; the server's files are not ours to read).
 */
export async function databaseContents(holder: HasStore, options: { checkpoint?: boolean } = {}): Promise<Buffer> {
  return on(holder, {
    sqlite: (client) => {
      if (options.checkpoint) client.pragma('wal_checkpoint(TRUNCATE)');
      const file = client.name;
      return Buffer.concat([file, `${file}-wal`].filter((name) => fs.existsSync(name)).map((name) => fs.readFileSync(name)));
    },
    postgres: async (pool) => {
      const { rows: tables } = await pool.query<{ name: string }>(
        `select format('%I.%I', table_schema, table_name) as name from information_schema.tables
         where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema') order by 1`,
      );
      if (!tables.some((table) => table.name === 'public.deliveries')) throw new Error('no deliveries table to dump');
      const parts: string[] = [];
      for (const { name } of tables) {
        const { rows } = await pool.query<{ row: string }>(`select t::text as row from ${name} t`);
        parts.push(name, ...rows.map((row) => row.row));
      }
      return Buffer.from(parts.join('\n'));
    },
  });
}

/** The id and caller of every delivery under an idempotency key. */
export function deliveriesWithKey(holder: HasStore, key: string): Promise<{ id: string; caller_id: string }[]> {
  return on(holder, {
    sqlite: (client) => client.prepare('select id, caller_id from deliveries where idempotency_key = ? order by id').all(key) as { id: string; caller_id: string }[],
    postgres: async (pool) =>
      (await pool.query<{ id: string; caller_id: string }>('select id, caller_id from deliveries where idempotency_key = $1 order by id', [key])).rows,
  });
}

/** The newest delivery to a recipient, by creation time (undefined when there is none). */
export function latestDeliveryId(holder: HasStore, recipient: string): Promise<string | undefined> {
  return on(holder, {
    sqlite: (client) =>
      (client.prepare('select id from deliveries where recipient = ? order by created_at desc, id desc limit 1').get(recipient) as { id: string } | undefined)?.id,
    postgres: async (pool) =>
      (await pool.query<{ id: string }>('select id from deliveries where recipient = $1 order by created_at desc, id desc limit 1', [recipient]))
        .rows[0]?.id,
  });
}

/** Moves a delivery `ms` back in time (created_at and updated_at), as if it had been accepted that much earlier. */
export async function backdateDelivery(holder: HasStore, id: string, ms: number): Promise<void> {
  const changed = await on(holder, {
    sqlite: (client) => client.prepare('update deliveries set created_at = created_at - ?, updated_at = updated_at - ? where id = ?').run(ms, ms, id).changes,
    postgres: async (pool) =>
      (await pool.query('update deliveries set created_at = created_at - $1, updated_at = updated_at - $1 where id = $2', [ms, id])).rowCount ?? 0,
  });
  if (changed !== 1) throw new Error(`no delivery ${id} to backdate`);
}

/** The sealed_secrets column of a delivery as stored (the sealed form, or null once erased). */
export async function sealedSecretsOf(holder: HasStore, id: string): Promise<string | null> {
  const rows = await on(holder, {
    sqlite: (client) => client.prepare('select sealed_secrets from deliveries where id = ?').all(id) as { sealed_secrets: string | null }[],
    postgres: async (pool) => (await pool.query<{ sealed_secrets: string | null }>('select sealed_secrets from deliveries where id = $1', [id])).rows,
  });
  if (rows.length !== 1) throw new Error(`no delivery ${id}`);
  return rows[0].sealed_secrets;
}

export interface BareDelivery {
  id: string;
  channel: ChannelName;
  status: DeliveryStatus;
  createdAt: number;
}

/** Inserts rows straight into the table in one transaction, past every rule of the store (provider 'p', recipient 'r'). */
export async function insertBareDeliveries(holder: HasStore, rows: readonly BareDelivery[]): Promise<void> {
  const columns = 'id, channel, status, provider, recipient, payload, caller_id, attempts, created_at, updated_at';
  await on(holder, {
    sqlite: (client) => {
      const insert = client.prepare(`insert into deliveries (${columns}) values (?, ?, ?, 'p', 'r', '{}', 'env:1', 0, ?, ?)`);
      client.transaction(() => {
        for (const row of rows) insert.run(row.id, row.channel, row.status, row.createdAt, row.createdAt);
      })();
    },
    postgres: async (pool) => {
      await pool.query(
        `insert into deliveries (${columns})
         select id, channel, status, 'p', 'r', '{}', 'env:1', 0, created_at, created_at
         from unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) as row(id, channel, status, created_at)`,
        [rows.map((row) => row.id), rows.map((row) => row.channel), rows.map((row) => row.status), rows.map((row) => row.createdAt)],
      );
    },
  });
}

export interface GroupedCount {
  bucketStart: number;
  channel: string;
  status: string;
  count: number;
}

/** Deliveries created in [from, to), counted by one plain GROUP BY over bucket, channel and status, in that order. */
export function groupedDeliveryCounts(holder: HasStore, from: number, to: number, bucketMs: number): Promise<GroupedCount[]> {
  if (!Number.isSafeInteger(bucketMs) || bucketMs <= 0) throw new RangeError('bucketMs must be a positive integer');
  return on(holder, {
    sqlite: (client) =>
      client
        .prepare(
          `select (created_at / ${bucketMs}) * ${bucketMs} as bucketStart, channel, status, count(*) as count from deliveries
           where created_at >= ? and created_at < ? group by 1, 2, 3 order by 1, 2, 3`,
        )
        .all(from, to) as GroupedCount[],
    postgres: async (pool) =>
      (
        await pool.query<GroupedCount>(
          `select (created_at / ${bucketMs}) * ${bucketMs} as "bucketStart", channel, status, count(*)::int as count from deliveries
           where created_at >= $1 and created_at < $2 group by 1, 2, 3 order by 1, 2, 3`,
          [from, to],
        )
      ).rows,
  });
}

/**
 * `describe` once per store, named `<name> [sqlite]` and `<name> [postgres]`; the PostgreSQL one is skipped (hooks and
 * all) when no server answered at the start of the run.
 */
export function describeOnStores(name: string, body: (kind: StoreKind) => void, options?: { timeout?: number }): void {
  for (const kind of storeKinds) describe.skipIf(storeUnavailable(kind))(`${name} [${kind}]`, options ?? {}, () => body(kind));
}

/** A stored token that may send on every channel but read only its own deliveries. */
export function insertOwnReaderToken(holder: HasStore, token: string): Promise<void> {
  return storeOf(holder).insertToken({
    id: 'tok_own',
    name: 'reader',
    tokenHash: hashToken(token),
    scopes: JSON.stringify({ ...fullScopes, read: 'own' }),
    createdAt: Date.now(),
    revokedAt: null,
    lastUsedAt: null,
  });
}

/** A stored token with these channels and read scope, id `tok_<name>`; returns the token to present. */
export async function insertScopedToken(
  holder: HasStore,
  name: string,
  scopes: TokenScopes,
  token = `${name}-token-0123456789`,
): Promise<string> {
  await storeOf(holder).insertToken({
    id: `tok_${name}`,
    name,
    tokenHash: hashToken(token),
    scopes: JSON.stringify(scopes),
    createdAt: Date.now(),
    revokedAt: null,
    lastUsedAt: null,
  });
  return token;
}

/** Runs SQL as it is written (a migration file's statements, say). */
export function executeSql(holder: HasStore, sql: string): Promise<void> {
  return on(holder, {
    sqlite: (client) => {
      client.exec(sql);
    },
    postgres: async (pool) => {
      await pool.query(sql);
    },
  });
}
