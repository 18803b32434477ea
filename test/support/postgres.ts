import crypto from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

/** The server the PostgreSQL suites use: each test file makes databases of its own on it, and drops them. */
export const postgresServerUrl = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Whether the PostgreSQL server answered when the run started (test/support/global-setup.ts). */
    postgresAvailable: boolean;
  }
}

/** True when the PostgreSQL suites can run; false means they are skipped (never with CI=true: the run failed then). */
export const postgresAvailable = (): boolean => inject('postgresAvailable');

export async function postgresReachable(url = postgresServerUrl): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

async function onServer<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: postgresServerUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  /** postgres://… of the new, empty database. */
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A new empty database on the test server (the gateway migrates it when it opens it). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `ngw_test_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  await onServer((client) => client.query(`create database ${name} template template0`));
  const url = new URL(postgresServerUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    // WITH (FORCE) ends the sessions a killed gateway left behind.
    drop: () => onServer((client) => client.query(`drop database if exists ${name} with (force)`)).then(() => undefined),
  };
}

/** A statement on the server's maintenance database (to alter or cut off a test database). */
export async function adminQuery(text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  return onServer((client) => client.query(text, values));
}

/** A short-lived client on a test database, for reading rows as the gateway left them. */
export async function withDatabase<T>(database: TestDatabase, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
