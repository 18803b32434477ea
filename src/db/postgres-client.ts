import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { migrationsFolder, refuseNewerSchema, schemaCurrent, type AppliedMigrations } from './migrations';
import * as schema from './postgres-schema';

export type PgDb = NodePgDatabase<typeof schema> & { $client: pg.Pool };

/** Epoch-millisecond columns are bigint: read as JS numbers (exact up to 2^53, far beyond any date). */
const parseInt8 = (value: string) => Number(value);
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? parseInt8 : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

export interface PoolOptions {
  url: string;
  poolSize: number;
  /** Shown in pg_stat_activity. */
  applicationName: string;
}

export function connectionSettings({ url, applicationName }: Pick<PoolOptions, 'url' | 'applicationName'>): pg.ClientConfig {
  return {
    connectionString: url,
    application_name: applicationName,
    // Random reads cost what sequential ones do on SSDs. With the default (4) the planner walks the created_at index
    // and filters a status or channel instead of walking that filter's own index: the page of SENT deliveries then
    // reads past every newer QUEUED one (tens of ms on a million rows). Set for the gateway's own sessions, at connect.
    options: '-c random_page_cost=1.1',
    // A server that does not answer fails a request (and readiness) instead of hanging it.
    connectionTimeoutMillis: 5000,
    keepAlive: true,
    types,
  };
}

/** The error that ended a pooled connection, heard by its one lifelong listener. */
const lostConnections = new WeakMap<pg.ClientBase, Error>();

export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({ ...connectionSettings(options), max: options.poolSize, idleTimeoutMillis: 30_000 });
  // pg-pool listens for a connection's errors only while it is idle, and hands a connection back and on to the next
  // waiter inside the socket read that finished the last query. The rest of that read (the server's FATAL after it,
  // when the server went away) finds no listener: the next holder's is attached a microtask later. An 'error' nobody
  // hears ends the process. One listener for the connection's whole life closes every such gap.
  pool.on('connect', (client) => client.on('error', (error) => lostConnections.set(client, error)));
  return pool;
}

/**
 * One connection of a pool made by `createPool` for `work`, handed back after it; destroyed instead when it broke
 * (the server restarted, pg_terminate_backend, or `work` called `broken`), so the pool never hands it on.
 */
export async function withPoolClient<T>(pool: pg.Pool, work: (client: pg.PoolClient, broken: (error: Error) => void) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    return await work(client, (error) => (broken ??= error));
  } finally {
    client.release(broken ?? lostConnections.get(client));
  }
}

/** Any 64-bit number will do, as long as it is the same in every replica: "notify-gateway migrate". */
const migrationLockKey = 7_236_142_198_411_530_901n;

/**
 * Applies the committed drizzle-kit migrations under a session advisory lock, so that replicas starting together
 * migrate once: the others wait for the lock, then find nothing left to do. A database migrated by a newer gateway is
 * refused before anything is written.
 */
export async function migratePostgres(pool: pg.Pool): Promise<void> {
  await withPoolClient(pool, async (client, broken) => {
    try {
      await client.query('select pg_advisory_lock($1)', [migrationLockKey.toString()]);
      try {
        refuseNewerSchema('postgres', await appliedMigrations(client));
        await migrate(drizzle({ client, schema, casing: 'snake_case' }), { migrationsFolder: migrationsFolder('postgres') });
      } finally {
        await client.query('select pg_advisory_unlock($1)', [migrationLockKey.toString()]);
      }
    } catch (error) {
      // The session lock may still be held: the connection is not handed back to the pool.
      broken(error as Error);
      throw error;
    }
  });
}

export async function appliedMigrations(client: pg.Pool | pg.PoolClient): Promise<AppliedMigrations> {
  const table = await client.query<{ name: string | null }>("select to_regclass('drizzle.__drizzle_migrations')::text as name");
  if (!table.rows[0]?.name) return { count: 0 };
  const { rows } = await client.query<{ count: number; latest: number | null }>(
    'select count(*)::int as count, max(created_at) as latest from drizzle.__drizzle_migrations',
  );
  return { count: rows[0].count, latest: rows[0].latest ?? undefined };
}

export async function postgresMigrationsCurrent(pool: pg.Pool): Promise<boolean> {
  return schemaCurrent('postgres', await appliedMigrations(pool));
}

export function drizzleFor(pool: pg.Pool): PgDb {
  return drizzle({ client: pool, schema, casing: 'snake_case' }) as PgDb;
}
