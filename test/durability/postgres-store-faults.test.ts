import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PostgresStore } from '../../src/db/postgres-store';
import { startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import { eventually, startGateway, type TestGateway } from '../support/gateway';
import { adminQuery, postgresAvailable, type TestDatabase } from '../support/postgres';
import { privatePostgresPossible, startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres';
import { expectGeneralWords, expectRecovered, newSend, readiness, sendOverGraphql, sendOverRest, type Send } from '../support/store-faults';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends under load (four callers in a loop) while `fault` runs: during it, refused sends get the retryable error over
 * GraphQL and REST, a query fails with 503, readiness fails; after it, readiness recovers without a restart, and every
 * accepted send, and every refused one sent again with its key, arrives exactly once.
 */
async function underLoad(gateway: TestGateway<PostgresStore>, sink: SmtpSink, fault: () => Promise<void>): Promise<void> {
  const accepted: string[] = [];
  const refused: Send[] = [];
  let loading = true;
  let sent = 0;
  const caller = async (label: string) => {
    while (loading) {
      const send = newSend(label, sent++);
      const answer = await sendOverGraphql(gateway, send);
      if (answer.accepted) accepted.push(answer.id);
      else {
        expectGeneralWords(answer.message);
        refused.push(send);
        await sleep(50);
      }
    }
  };
  const callers = ['a', 'b', 'c', 'd'].map(caller);
  await eventually(() => accepted.length >= 40);
  await fault();
  // Callers keep sending for a moment after the recovery: the dispatcher and the API both came back.
  await sleep(500);
  loading = false;
  await Promise.all(callers);
  expect(refused.length).toBeGreaterThan(0);
  expect(accepted.length).toBeGreaterThan(40);
  await eventually(() => accepted.every((id) => sink.messagesFor(id).length > 0), 30_000).catch(async (error: Error) => {
    // What the missing ones look like, and what the gateway said, make a failure readable.
    const missing = await gateway.store.getDeliveries(accepted.filter((id) => sink.messagesFor(id).length === 0).slice(0, 5));
    const said = gateway.logs.filter((line) => (line.level as number) >= 40 && line.msg !== 'request').map((line) => line.msg);
    throw new Error(`${error.message}\n${JSON.stringify(missing)}\n${JSON.stringify(said)}`);
  });
  // Episodes, not requests: a restart may look like two (the connections cut, then the server gone).
  await expectRecovered(gateway, sink, { accepted, refused }, 'unreachable', { min: 1, max: 2 });
}

/** While the database refuses: REST is told to retry, a query is 503 with the code, readiness fails, health does not. */
async function expectRefusing(gateway: TestGateway<PostgresStore>, base: string): Promise<void> {
  const rest = await eventually(async () => {
    const answer = await sendOverRest(base, newSend('rest', 0));
    return !answer.accepted && answer;
  });
  expectGeneralWords(rest.message);
  const query = await gateway.graphql('{ deliveries(first: 5) { edges { node { id } } } }');
  expect(query.status).toBe(503);
  expect(query.body.errors).toMatchObject([{ extensions: { code: 'STORE_UNAVAILABLE' } }]);
  expect(query.body.errors![0].message).not.toBe('Unexpected error.');
  expect(await readiness(gateway)).toMatchObject({ status: 503, checks: { store: 'failing' } });
  expect((await gateway.fetch('/healthz')).status).toBe(200);
}

describe('PostgreSQL lost mid-load: callers are told to retry, readiness fails and recovers, nothing is lost', { timeout: 90_000 }, () => {
  let sink: SmtpSink;
  let gateway: TestGateway<PostgresStore> | undefined;
  let server: PrivatePostgres | undefined;
  beforeEach(async () => {
    sink = await startSmtpSink();
  });
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
    await server?.close();
    server = undefined;
    await sink?.close();
  });

  const env = (sinkUrl: string) => ({ SMTP_URL: sinkUrl, LOG_LEVEL: 'info', RETRY_MAX_ATTEMPTS: '3', DATABASE_POOL_SIZE: '4',
    // The load of these tests on a shared machine must not time out an SMTP answer: that duplicate is not theirs.
    PROVIDER_TIMEOUT_MS: '15000' });

  it.skipIf(!postgresAvailable())("pg_terminate_backend on the gateway's connections (the database refusing new ones for 1.5 s)", async () => {
    gateway = await startGateway({ store: 'postgres', env: env(sink.url) });
    const running = gateway;
    const database = running.database as TestDatabase;
    const base = await running.listen();
    await underLoad(running, sink, async () => {
      await adminQuery(`alter database ${database.name} allow_connections false`);
      try {
        await adminQuery('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1', [database.name]);
        await expectRefusing(running, base);
        await sleep(1500);
        expect((await readiness(running)).status).toBe(503);
      } finally {
        await adminQuery(`alter database ${database.name} allow_connections true`);
      }
      await eventually(async () => (await readiness(running)).status === 200, 15_000);
    });
  });

  it.skipIf(!privatePostgresPossible())('the server restarted (a private cluster, down for 2 s)', async () => {
    server = await startPrivatePostgres();
    gateway = await startGateway({ store: server.database, env: env(sink.url) });
    const running = gateway;
    const cluster = server;
    const base = await running.listen();
    await underLoad(running, sink, async () => {
      await cluster.stop();
      try {
        await expectRefusing(running, base);
        await sleep(2000);
      } finally {
        await cluster.start();
      }
      await eventually(async () => (await readiness(running)).status === 200, 15_000);
    });
  });
});
