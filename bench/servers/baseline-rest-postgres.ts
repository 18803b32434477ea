// baseline-rest.ts on PostgreSQL: the same bare server (bench/baseline/servers.ts) and the same row in the same
// migrated schema, inserted with the gateway's driver and pool settings (createPool, pool size DATABASE_POOL_SIZE): one
// autocommit INSERT per request, a statement prepared once per connection. PostgreSQL groups concurrent commits itself.
import { createPool } from '../../src/db/postgres-client';
import { serveRestBaseline } from '../baseline/servers';

const pool = createPool({ url: process.env.DATABASE_URL!, poolSize: Number(process.env.DATABASE_POOL_SIZE), applicationName: 'baseline' });
const insert = `insert into deliveries (id, channel, status, provider, recipient, payload, caller_id, attempts, next_attempt_at, created_at, updated_at)
   values ($1, 'EMAIL', 'QUEUED', 'smtp', $2, $3, 'env:1', 0, $4, $5, $6)`;
serveRestBaseline(({ id, recipient, payload, now }) =>
  pool.query({ name: 'insert', text: insert, values: [id, recipient, payload, now, now, now] }),
);
