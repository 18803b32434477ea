import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/db';
import { SchemaTooNewError } from '../../src/db/migrations';
import { createTestDatabase, postgresAvailable, withDatabase } from '../support/postgres';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const journal = (dialect: string) =>
  JSON.parse(fs.readFileSync(path.join(root, `drizzle/${dialect}/meta/_journal.json`), 'utf8')) as { entries: unknown[] };

describe('migrations on SQLite', () => {
  it('applies every committed migration once, and refuses a database migrated by a newer gateway', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-migrations-'));
    const file = path.join(dir, 'notify.db');
    try {
      await (await openStore({ kind: 'sqlite', path: file })).close();
      await (await openStore({ kind: 'sqlite', path: file })).close();
      const db = new Database(file);
      expect((db.prepare('select count(*) as n from __drizzle_migrations').get() as { n: number }).n).toBe(journal('sqlite').entries.length);
      db.prepare('insert into __drizzle_migrations (hash, created_at) values (?, ?)').run('from-the-future', Date.now() + 86_400_000);
      db.close();
      await expect(openStore({ kind: 'sqlite', path: file })).rejects.toThrow(SchemaTooNewError);
      await expect(openStore({ kind: 'sqlite', path: file })).rejects.toThrow(/newer than this gateway knows \(\d+ migrations applied, this version has \d+\)/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!postgresAvailable())('migrations on PostgreSQL', () => {
  it('five stores opening a new database at once migrate it once (advisory lock), all usable', async () => {
    const database = await createTestDatabase();
    try {
      const stores = await Promise.all(
        Array.from({ length: 5 }, () => openStore({ kind: 'postgres', url: database.url, poolSize: 2 })),
      );
      for (const store of stores) expect(await store.migrationsCurrent()).toBe(true);
      await Promise.all(stores.map((store) => store.close()));
      const rows = await withDatabase(database, (client) => client.query('select hash from drizzle.__drizzle_migrations'));
      expect(rows.rowCount).toBe(journal('postgres').entries.length);
    } finally {
      await database.drop();
    }
  });

  it('a setting another replica is writing at that moment: settingOnce waits for it and answers its value', async () => {
    const database = await createTestDatabase();
    try {
      const store = await openStore({ kind: 'postgres', url: database.url, poolSize: 2 });
      const other = new pg.Client({ connectionString: database.url });
      await other.connect();
      try {
        await other.query('begin');
        await other.query("insert into gateway_settings (name, value) values ('secret_key_check', 'theirs')");
        const ours = store.settingOnce('secret_key_check', 'ours');
        await new Promise((resolve) => setTimeout(resolve, 200));
        await other.query('commit');
        expect(await ours).toBe('theirs');
        expect(await store.settingOnce('secret_key_check', 'later')).toBe('theirs');
      } finally {
        await other.end();
        await store.close();
      }
    } finally {
      await database.drop();
    }
  });

  it('refuses a database migrated by a newer gateway, before writing anything', async () => {
    const database = await createTestDatabase();
    try {
      await (await openStore({ kind: 'postgres', url: database.url, poolSize: 2 })).close();
      await withDatabase(database, (client) =>
        client.query('insert into drizzle.__drizzle_migrations (hash, created_at) values ($1, $2)', ['from-the-future', Date.now() + 86_400_000]),
      );
      await expect(openStore({ kind: 'postgres', url: database.url, poolSize: 2 })).rejects.toThrow(SchemaTooNewError);
      const rows = await withDatabase(database, (client) => client.query('select hash from drizzle.__drizzle_migrations'));
      expect(rows.rowCount).toBe(journal('postgres').entries.length + 1);
    } finally {
      await database.drop();
    }
  });
});
