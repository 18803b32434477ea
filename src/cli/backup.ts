import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { loadConfig } from '../config';
import { runCommand, UsageError } from './cli-errors';

const usage = `Copy the embedded SQLite database while the gateway runs and keeps accepting.

  npm run backup -- <file>
      Writes a consistent copy of the database (as it was when the copy began) to <file>, which must not exist yet,
      and prints how many deliveries it holds and its size. Keep DATA_DIR/secret.key (or NOTIFY_SECRET_KEY) with it:
      sealed secrets cannot be opened without it. Restoring: see the README (Operations, Backup and restore).

Uses DATABASE_URL (default file:./data/notify.db). For PostgreSQL use pg_dump instead (see the README).`;

function main(argv: string[]): number {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('takes one file to write the copy to');
  const target = path.resolve(positionals[0]);
  const config = loadConfig(process.env);
  if (config.database.kind !== 'sqlite') throw new UsageError('DATABASE_URL is PostgreSQL: back it up with pg_dump (see the README)');
  if (config.database.path === ':memory:') throw new UsageError('an in-memory database cannot be backed up');
  if (fs.existsSync(target)) throw new UsageError(`${target} exists already; choose a new file (a backup never overwrites one)`);
  // Read-only, in a process of its own: the gateway's writers go on (WAL lets readers and a writer work at once), and
  // VACUUM INTO copies what one read transaction sees, so the copy is consistent without stopping anything.
  const source = new Database(config.database.path, { readonly: true, fileMustExist: true });
  try {
    source.pragma('busy_timeout = 5000');
    source.prepare('vacuum into ?').run(target);
  } finally {
    source.close();
  }
  const fd = fs.openSync(target, 'r');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const copy = new Database(target, { readonly: true });
  const { deliveries } = copy.prepare('select count(*) as deliveries from deliveries').get() as { deliveries: number };
  copy.close();
  const megabytes = (fs.statSync(target).size / 1_048_576).toFixed(1);
  process.stdout.write(`Wrote ${target}: ${deliveries} deliveries, ${megabytes} MB.\n`);
  if (!config.secretKey) {
    process.stderr.write(`Keep ${path.join(config.dataDir, 'secret.key')} with it: sealed secrets cannot be opened without that key.\n`);
  }
  return 0;
}

process.exitCode = await runCommand('backup', usage, () => main(process.argv.slice(2)));
