import crypto from 'node:crypto';
import pg from 'pg';
import { createPool, migratePostgres } from '../src/db/postgres-client';
import { cpuSecondsOf } from './harness';

/** The server the PostgreSQL parts make their databases on; each database is new, migrated, and dropped after. */
export const postgresServerUrl = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function onServer<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: postgresServerUrl, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Why the server cannot be used (its error message), or undefined when it answers. */
export async function postgresUnreachable(): Promise<string | undefined> {
  return onServer((client) => client.query('select 1')).then(
    () => undefined,
    (error: Error) => error.message || String(error),
  );
}

export interface BenchDatabase {
  name: string;
  url: string;
  /** A session of the harness on it, for probes and checks; its own backend is never counted in `backendCpu`. */
  client: pg.Client;
  /** CPU seconds used so far by each server process serving this database (client backends, autovacuum), by pid. */
  backendCpu(): Promise<Map<number, number>>;
  drop(): Promise<void>;
}

/** A new database migrated with the gateway's own migrations (as a gateway opening it would). */
export async function createDatabase(label: string): Promise<BenchDatabase> {
  const name = `notify_bench_${process.pid}_${label}_${crypto.randomBytes(3).toString('hex')}`;
  await onServer((client) => client.query(`create database ${name} template template0`));
  const url = new URL(postgresServerUrl);
  url.pathname = `/${name}`;
  const pool = createPool({ url: url.toString(), poolSize: 1, applicationName: 'notify-bench migrate' });
  await migratePostgres(pool);
  await pool.end();
  const client = new pg.Client({ connectionString: url.toString(), application_name: 'notify-bench' });
  await client.connect();
  return {
    name,
    url: url.toString(),
    client,
    async backendCpu() {
      const { rows } = await client.query<{ pid: number }>(
        'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
      );
      return new Map(rows.map(({ pid }) => [pid, cpuSecondsOf(pid)]));
    },
    async drop() {
      await client.end().catch(() => {});
      // WITH (FORCE) ends the sessions of a gateway that did not stop.
      await onServer((server) => server.query(`drop database if exists ${name} with (force)`));
    },
  };
}

/**
 * CPU seconds the server spent for a database between two readings of `backendCpu`: a backend that started in
 * between counts whole; one that ended in between is missed (the pools keep theirs for the length of a run).
 */
export function backendCpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, cpu] of after) total += cpu - (before.get(pid) ?? 0);
  return total;
}
