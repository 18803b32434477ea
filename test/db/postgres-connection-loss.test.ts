import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, withPoolClient } from '../../src/db/postgres-client';
import { adminQuery, createTestDatabase, postgresAvailable, type TestDatabase } from '../support/postgres';

// The replicas' outage test once lost a whole gateway process this way: a connection ended by the server while it was
// checked out between two queries emitted an 'error' that pg-pool no longer listens for, and the process died.
/** A FATAL ErrorResponse as PostgreSQL sends it to a session that pg_terminate_backend ended. */
function terminatedMessage(): Buffer {
  const fields = Buffer.from('SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0');
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeInt32BE(4 + fields.length, 1);
  return Buffer.concat([header, fields]);
}

const endsWithReadyForQuery = (data: Buffer) => data.length >= 6 && data[data.length - 6] === 'Z'.charCodeAt(0) && data.readInt32BE(data.length - 5) === 5;

/**
 * A TCP proxy to the test server that, once armed, delivers the end of the next answer and the server's FATAL in one
 * read, then closes: what a session terminated just as it answered looks like, made certain instead of lucky.
 */
async function startCuttingProxy(target: URL): Promise<{ url: string; arm(): void; close(): Promise<void> }> {
  let armed = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((downstream) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(downstream).add(upstream);
    downstream.pipe(upstream);
    let held: Buffer[] = [];
    upstream.on('data', (data: Buffer) => {
      if (!armed) return void downstream.write(data);
      held.push(data);
      if (!endsWithReadyForQuery(data)) return;
      armed = false;
      downstream.end(Buffer.concat([...held, terminatedMessage()]));
      held = [];
      upstream.destroy();
    });
    for (const socket of [downstream, upstream]) socket.on('error', () => {}).on('close', () => downstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url: url.toString(),
    arm: () => (armed = true),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

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

  // CI once lost a run this way: pool.query's answer hands its connection back, and pg-pool gives it to a waiting
  // withPoolClient within the same read; the FATAL later in that read found no listener and ended the process.
  it("a server's FATAL in the same read as the answer that freed the connection: the next holder's work fails, nothing else", async () => {
    const proxy = await startCuttingProxy(new URL(database.url));
    const pool = createPool({ url: proxy.url, poolSize: 1, applicationName: 'connection-loss-test' });
    try {
      await pool.query('select 1');
      proxy.arm();
      const freeing = pool.query<{ answer: number }>('select 7 as answer');
      const waiting = withPoolClient(pool, (client) => client.query('select 8 as answer'));
      expect((await freeing).rows).toEqual([{ answer: 7 }]);
      await expect(waiting).rejects.toThrow(/not queryable|terminat/i);
      const { rows } = await pool.query<{ answer: number }>('select 9 as answer');
      expect(rows).toEqual([{ answer: 9 }]);
      expect(pool.totalCount).toBe(1);
    } finally {
      await pool.end();
      await proxy.close();
    }
  });
});
