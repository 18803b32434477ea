import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import { countDeliveries } from '../support/db';
import { eventually, startGateway, type TestGateway } from '../support/gateway';
import { expectGeneralWords, expectRecovered, newSend, readiness, sendOverGraphql, sendOverRest, type Send } from '../support/store-faults';

interface Fault {
  kind: string;
  /** Whether a refused send may be in the database all the same (its commit landed, its fsync failed). */
  mayBeCommitted?: boolean;
  start(): void;
  end(): void;
}

describe('SQLite that cannot write: callers are told to retry, readiness fails and recovers, nothing is lost', { timeout: 60_000 }, () => {
  let sink: SmtpSink;
  let gateway: TestGateway;
  let base: string;
  beforeEach(async () => {
    sink = await startSmtpSink();
  });
  afterEach(async () => {
    await gateway?.close();
    await sink?.close();
  });

  async function start(env: Record<string, string> = {}): Promise<void> {
    gateway = await startGateway({ env: { SMTP_URL: sink.url, LOG_LEVEL: 'info', RETRY_MAX_ATTEMPTS: '3', ...env } });
    base = await gateway.listen();
  }

  /** Sends until one is refused (the fault shows on the first write that needs what is missing). */
  async function sendUntilRefused(label: string, over: (send: Send) => ReturnType<typeof sendOverGraphql>, accepted: string[]): Promise<Send> {
    for (let n = 0; n < 400; n++) {
      const send = newSend(label, n);
      const answer = await over(send);
      if (answer.accepted) {
        accepted.push(answer.id);
        continue;
      }
      expectGeneralWords(answer.message);
      return send;
    }
    throw new Error('the store never refused a send');
  }

  async function episode(fault: Fault): Promise<void> {
    const accepted: string[] = [];
    for (let n = 0; n < 20; n++) {
      const answer = await sendOverGraphql(gateway, newSend('before', n));
      expect(answer.accepted).toBe(true);
      if (answer.accepted) accepted.push(answer.id);
    }
    fault.start();
    const refused: Send[] = [];
    try {
      refused.push(await sendUntilRefused('graphql', (send) => sendOverGraphql(gateway, send), accepted));
      refused.push(await sendUntilRefused('rest', (send) => sendOverRest(base, send), accepted));
      expect(await readiness(gateway)).toMatchObject({ status: 503, checks: { store: 'failing' } });
      expect((await gateway.fetch('/healthz')).status).toBe(200);
      for (const send of refused) {
        expect(await countDeliveries(gateway, { idempotencyKey: send.key })).toBeLessThanOrEqual(fault.mayBeCommitted ? 1 : 0);
      }
      // Still failing a moment later: readiness waits for a write that goes through, not for the requests to stop.
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect((await readiness(gateway)).status).toBe(503);
    } finally {
      fault.end();
    }
    await eventually(async () => (await readiness(gateway)).status === 200, 10_000);
    for (let n = 0; n < 10; n++) {
      const answer = await sendOverGraphql(gateway, newSend('after', n));
      expect(answer.accepted).toBe(true);
      if (answer.accepted) accepted.push(answer.id);
    }
    await expectRecovered(gateway, sink, { accepted, refused }, fault.kind);
    expect(gateway.logs.filter((line) => line.msg === 'the database takes writes again')).toMatchObject([{ kind: fault.kind }]);
  }

  it('the database file reaches max_page_count (SQLITE_FULL)', async () => {
    await start();
    const client = gateway.store.db.$client;
    await episode({
      kind: 'disk_full',
      // Lowered below its size, SQLite holds the file at the pages it has: the next insert that needs a page fails.
      start: () => client.pragma('max_page_count = 1'),
      end: () => client.pragma('max_page_count = 1073741823'),
    });
  });

  it('another connection holds the write lock past the busy timeout (SQLITE_BUSY)', async () => {
    await start();
    // A short busy timeout (the default is 5 s), so that the test waits out the lock quickly.
    gateway.store.db.$client.pragma('busy_timeout = 100');
    const other = new Database(gateway.databasePath);
    try {
      await episode({
        kind: 'busy',
        start: () => other.prepare('begin immediate').run(),
        end: () => other.prepare('rollback').run(),
      });
    } finally {
      other.close();
    }
  });

  it("the WAL's fsync fails (EIO)", async () => {
    // Claims whose commit landed while their fsync failed lapse and are handed back within the lease.
    await start({ PROVIDER_TIMEOUT_MS: '1000', CLAIM_LEASE_MS: '4500' });
    const store = gateway.store;
    const fdatasync = store.fdatasync;
    await episode({
      kind: 'io_error',
      mayBeCommitted: true,
      start: () => {
        store.fdatasync = () => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', syscall: 'fdatasync' }));
      },
      end: () => {
        store.fdatasync = fdatasync;
      },
    });
  });
});
