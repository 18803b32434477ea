import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Dialect = 'sqlite' | 'postgres';

interface Journal {
  entries: { tag: string; when: number }[];
}

/** drizzle/<dialect> at the package root, found from this module whether it runs from src/ (tsx) or a bundle in dist/. */
export function migrationsFolder(dialect: Dialect): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'drizzle', dialect);
    if (fs.existsSync(path.join(candidate, 'meta/_journal.json'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`drizzle/${dialect} migrations folder not found`);
    dir = parent;
  }
}

function journal(dialect: Dialect): Journal {
  return JSON.parse(fs.readFileSync(path.join(migrationsFolder(dialect), 'meta/_journal.json'), 'utf8')) as Journal;
}

/** What the database says it has applied (drizzle's own record of migrations). */
export interface AppliedMigrations {
  count: number;
  /** The `when` of the latest one applied (drizzle records it as created_at), undefined on a new database. */
  latest?: number;
}

export class SchemaTooNewError extends Error {
  constructor(applied: AppliedMigrations, known: number) {
    super(
      `The database schema is newer than this gateway knows (${applied.count} migrations applied, this version has ${known}): ` +
        'a newer gateway has migrated it. Run that version (or newer) instead; this one refuses to start rather than write ' +
        'rows the newer schema does not expect.',
    );
    this.name = 'SchemaTooNewError';
  }
}

/** Throws when the database holds migrations this gateway does not have (written by a newer version). */
export function refuseNewerSchema(dialect: Dialect, applied: AppliedMigrations): void {
  const entries = journal(dialect).entries;
  const lastKnown = entries.at(-1)?.when ?? 0;
  if (applied.count > entries.length || (applied.latest !== undefined && applied.latest > lastKnown)) {
    throw new SchemaTooNewError(applied, entries.length);
  }
}

/** True when every migration this gateway has is applied. */
export function schemaCurrent(dialect: Dialect, applied: AppliedMigrations): boolean {
  return applied.count >= journal(dialect).entries.length;
}
