// Baseline for the legacy email route on SQLite: a bare node:http server (bench/baseline/servers.ts) and the same row
// in the same migrated schema, group-committed and synced as the gateway does (bench/baseline/sqlite-group-commit.ts).
import { openDatabase } from '../../src/db/sqlite-client';
import { serveRestBaseline } from '../baseline/servers';
import { groupCommitter } from '../baseline/sqlite-group-commit';

const db = openDatabase(process.env.DB_PATH!).$client;
const durably = groupCommitter(db);
const insert = db.prepare(
  `insert into deliveries (id, channel, status, provider, recipient, payload, caller_id, attempts, next_attempt_at, created_at, updated_at)
   values (?, 'EMAIL', 'QUEUED', 'smtp', ?, ?, 'env:1', 0, ?, ?, ?)`,
);
serveRestBaseline(({ id, recipient, payload, now }) => durably(() => insert.run(id, recipient, payload, now, now, now)));
