// Baseline for the legacy email route: node:http, the same query parsing, the same row in the same migrated SQLite
// schema, group-committed and synced as the gateway does (bench/baseline/sqlite-group-commit.ts); no gateway code.
import crypto from 'node:crypto';
import http from 'node:http';
import { openDatabase } from '../../src/db/sqlite-client';
import { groupCommitter } from '../baseline/sqlite-group-commit';

const db = openDatabase(process.env.DB_PATH!).$client;
const durably = groupCommitter(db);
const insert = db.prepare(
  `insert into deliveries (id, channel, status, provider, recipient, payload, caller_id, attempts, next_attempt_at, created_at, updated_at)
   values (?, 'EMAIL', 'QUEUED', 'smtp', ?, ?, 'env:1', 0, ?, ?, ?)`,
);
const token = process.env.TOKEN!;

const server = http.createServer(async (request, response) => {
  const url = new URL(request.url!, 'http://x');
  if (request.headers['ops-token'] !== token) {
    response.end(JSON.stringify({ code: 1002, data: 'authentication failed' }));
    return;
  }
  const email = url.searchParams.get('email');
  const content = url.searchParams.get('content');
  if (!email || !content) {
    response.end(JSON.stringify({ code: 1001, data: 'missing parameter' }));
    return;
  }
  const now = Date.now();
  const id = `dlv_${now.toString(16).padStart(12, '0')}${crypto.randomBytes(8).toString('hex')}`;
  await durably(() => insert.run(id, email, JSON.stringify({ to: [email], subject: content.slice(0, 50), text: content }), now, now, now));
  response.setHeader('content-type', 'application/json; charset=utf-8');
  response.end(JSON.stringify({ code: 1000, data: 'queued', deliveryId: id }));
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`ready ${(server.address() as { port: number }).port}`);
});
// BENCH_PROF: exit normally on SIGTERM so that node writes the profile.
process.on('SIGTERM', () => process.exit(0));
