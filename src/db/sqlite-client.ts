import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { migrationsFolder, refuseNewerSchema, schemaCurrent, type AppliedMigrations } from './migrations';
import * as schema from './sqlite-schema';

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

/** Opens the SQLite database in WAL mode and applies the committed drizzle-kit migrations. */
export function openDatabase(databasePath: string): Db {
  if (databasePath !== ':memory:') fs.mkdirSync(path.dirname(databasePath), { recursive: true });
  const sqlite = new Database(databasePath);
  try {
    sqlite.pragma('journal_mode = WAL');
    // FULL: a delivery acknowledged to a caller survives power loss, not only a process crash.
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    // Erased secrets are overwritten with zeros in the file, not just unlinked (the key often sits in the same folder).
    sqlite.pragma('secure_delete = ON');
    sqlite.pragma('busy_timeout = 5000');
    useIncrementalVacuum(sqlite);
    const db = drizzle({ client: sqlite, schema, casing: 'snake_case' }) as Db;
    refuseNewerSchema('sqlite', appliedMigrations(db));
    migrate(db, { migrationsFolder: migrationsFolder('sqlite') });
    return db;
  } catch (error) {
    sqlite.close();
    throw error;
  }
}

/**
 * Free pages (of purged deliveries) are given back to the file system a few at a time (`incremental_vacuum`) instead of
 * staying in the file at its peak size. A new file takes the setting before its first table; an older one only when
 * rebuilt: one VACUUM, at the first start of a version with retention (it writes a copy of the file, so it needs as
 * much free disk again and takes about a minute per GB).
 */
function useIncrementalVacuum(sqlite: Database.Database): void {
  if (sqlite.memory || sqlite.pragma('auto_vacuum', { simple: true }) === 2) return;
  sqlite.pragma('auto_vacuum = INCREMENTAL');
  // A file already written (the WAL switch writes the header) takes it only with a VACUUM: instant while empty.
  if (sqlite.pragma('auto_vacuum', { simple: true }) !== 2) sqlite.exec('VACUUM');
}

function appliedMigrations(db: Db): AppliedMigrations {
  const known = db.$client.prepare("select 1 from sqlite_master where type = 'table' and name = '__drizzle_migrations'").get();
  if (!known) return { count: 0 };
  const row = db.$client.prepare('select count(*) as count, max(created_at) as latest from __drizzle_migrations').get() as {
    count: number;
    latest: number | null;
  };
  return { count: row.count, latest: row.latest ?? undefined };
}

/** True when every migration in drizzle/sqlite has been applied to this database. */
export function migrationsCurrent(db: Db): boolean {
  return schemaCurrent('sqlite', appliedMigrations(db));
}
