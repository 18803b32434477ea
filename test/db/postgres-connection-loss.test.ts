import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, withPoolClient } from '../../src/db/postgres-client';
import { adminQuery, createTestDatabase, postgresAvailable, type TestDatabase } from '../support/postgres';

// The replicas' outage test once lost a whole gateway process this way: a connection ended by the server while it was
// checked out between two queries emitted an 'error' that pg-pool no longer listens for, and the process died.
describe.skipIf(!postgresAvailable())('a pooled connection lost while checked out', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database?.drop());

  it('fails only the work that held it; the connection is dropped and the pool serves the next query', async () => {
    const pool = createPool({ url: database.url, poolSize: 2, applicationName: 'connection-loss-test' });
    try {
      let lostPid = 0;
      await withPoolClient(pool, async (client) => {
        lostPid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;
        await adminQuery('select pg_terminate_backend($1)', [lostPid]);
        // Between two queries: the end of the connection arrives as an 'error' event, not as a rejected query.
        await new Promise((resolve) => setTimeout(resolve, 300));
      });
      const { rows } = await pool.query<{ pid: number }>('select pg_backend_pid() as pid');
      expect(rows[0].pid).not.toBe(lostPid);
      expect(pool.totalCount).toBe(1);
    } finally {
      await pool.end();
    }
  });
});
