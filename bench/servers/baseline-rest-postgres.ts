// baseline-rest.ts on PostgreSQL: node:http, the same query parsing, the same row in the same migrated schema, inserted
// with the gateway's driver and pool settings (createPool, pool size DATABASE_POOL_SIZE): one autocommit INSERT per
// request, a statement prepared once per connection. No gateway code at all.
import crypto from 'node:crypto';
import http from 'node:http';
import { createPool } from '../../src/db/postgres-client';

const pool = createPool({ url: process.env.DATABASE_URL!, poolSize: Number(process.env.DATABASE_POOL_SIZE), applicationName: 'baseline' });
const insert = `insert into deliveries (id, channel, status, provider, recipient, payload, caller_id, attempts, next_attempt_at, created_at, updated_at)
   values ($1, 'EMAIL', 'QUEUED', 'smtp', $2, $3, 'env:1', 0, $4, $5, $6)`;
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
  await pool.query({ name: 'insert', text: insert, values: [id, email, JSON.stringify({ to: [email], subject: content.slice(0, 50), text: content }), now, now, now] });
  response.setHeader('content-type', 'application/json; charset=utf-8');
  response.end(JSON.stringify({ code: 1000, data: 'queued', deliveryId: id }));
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`ready ${(server.address() as { port: number }).port}`);
});
