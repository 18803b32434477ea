// Baseline for sendEmail over GraphQL on SQLite: node:http and graphql-js with a document cache
// (bench/baseline/servers.ts), and the same row in the same migrated schema, group-committed and synced as the gateway
// does (bench/baseline/sqlite-group-commit.ts).
import { openDatabase } from '../../src/db/sqlite-client';
import { serveGraphqlBaseline } from '../baseline/servers';
import { groupCommitter } from '../baseline/sqlite-group-commit';

const db = openDatabase(process.env.DB_PATH!).$client;
const durably = groupCommitter(db);
const insert = db.prepare(
  `insert into deliveries (id, channel, status, provider, recipient, payload, caller_id, attempts, next_attempt_at, created_at, updated_at)
   values (?, 'EMAIL', 'QUEUED', 'smtp', ?, ?, 'env:1', 0, ?, ?, ?) returning *`,
);
serveGraphqlBaseline(
  ({ id, recipient, payload, now }) => durably(() => insert.get(id, recipient, payload, now, now, now) as Record<string, unknown>),
);
