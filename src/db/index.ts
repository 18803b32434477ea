import type { DatabaseConfig } from '../config';
import type { Logger } from '../logger';
import { PostgresStore } from './postgres-store';
import { SqliteStore } from './sqlite-store';
import type { Store } from './store';

export type { Store } from './store';

/** The store DATABASE_URL names, opened and migrated: the embedded SQLite file, or a PostgreSQL server. */
export async function openStore(database: DatabaseConfig, options: { logger?: Logger; replicaId?: string } = {}): Promise<Store> {
  if (database.kind === 'postgres') {
    return PostgresStore.open({ url: database.url, poolSize: database.poolSize, ...options });
  }
  return SqliteStore.open(database.path);
}
