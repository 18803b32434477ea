import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/auth';
import { startAliyunSmsEmulator, type AliyunSmsEmulator } from '../peers/aliyun-sms-emulator';
import { startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import { eventually, testSecretKey, testToken } from '../support/gateway';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process';
import { adminQuery, createTestDatabase, postgresAvailable, withDatabase, type TestDatabase } from '../support/postgres';
import { sendEmailMutation, sendSmsMutation, startReplicas, statusesOnceSent } from '../support/replicas';
import { sseReader } from '../support/sse';
import { subscribe, webSocketClient } from '../support/websocket';

// Three gateway processes (the bundle npm start runs) on one PostgreSQL database, as three replicas behind a load
// balancer: each property below is observed at the real peers and in the shared rows.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe.skipIf(!postgresAvailable())('three replicas on one PostgreSQL database', { timeout: 120_000 }, () => {
  let database: TestDatabase;
  let sink: SmtpSink;
  let aliyun: AliyunSmsEmulator;
  let replicas: GatewayProcess[];
  let acceptOnly: GatewayProcess;

  beforeAll(async () => {
    database = await createTestDatabase();
    sink = await startSmtpSink();
    aliyun = await startAliyunSmsEmulator({ accessKeyId: 'replica-key', accessKeySecret: 'replica-secret', limits: false });
    const env = {
      SMTP_URL: sink.url,
      SMS_PROVIDER: 'aliyun',
      ALIYUN_ACCESS_KEY_ID: 'replica-key',
      ALIYUN_ACCESS_KEY_SECRET: 'replica-secret',
      ALIYUN_SMS_SIGN_NAME: '运维平台',
      ALIYUN_SMS_TEMPLATE_CODE: 'SMS_154950909',
      ALIYUN_SMS_ENDPOINT: aliyun.url,
      DISPATCH_POLL_MS: '100',
      WEBSOCKET_TOKEN_RECHECK_MS: '500',
      PROVIDER_TIMEOUT_MS: '3000',
      CLAIM_LEASE_MS: '7000',
      // Far above what the other tests send with the test token in a minute; one test drives its own token to it.
      RATE_LIMIT_PER_TOKEN_PER_MINUTE: '100',
    };
    replicas = await startReplicas(4, database, env, [{}, {}, {}, { DISPATCH_CONCURRENCY: '0' }]);
    acceptOnly = replicas.pop()!;
  }, 120_000);

  afterAll(async () => {
    await Promise.all([...(replicas ?? []), ...(acceptOnly ? [acceptOnly] : [])].map((replica) => replica.stop()));
    await sink?.close();
    await aliyun?.close();
    await database?.drop();
  });

  it('started together, they migrated the database once', async () => {
    const migrations = await withDatabase(database, (client) => client.query('select hash from drizzle.__drizzle_migrations'));
    const files = fs.readdirSync(path.join(root, 'drizzle', 'postgres')).filter((file) => file.endsWith('.sql'));
    // Each migration once, not once per replica.
    expect(migrations.rowCount).toBe(files.length);
    for (const replica of [...replicas, acceptOnly]) {
      const ready = await replica.get('/readyz', { token: null });
      expect(ready).toEqual({
        status: 200,
        body: { status: 'ready', checks: { database: 'ok', migrations: 'ok', store: 'ok', dispatcher: 'ok', liveUpdates: 'ok' } },
      });
    }
  });

  it('the same idempotency key on three replicas at the same moment: one delivery, one message', async () => {
    const input = { to: ['oncall@example.com'], subject: 'disk full on db-7', content: '/var at 97%', idempotencyKey: `race-${crypto.randomUUID()}` };
    const answers = await Promise.all(replicas.map((replica) => replica.graphql(sendEmailMutation, { input })));
    const results = answers.map(({ body }) => body.data.sendEmail);
    expect(results.map((result) => result.__typename)).toEqual(['Delivery', 'Delivery', 'Delivery']);
    expect(new Set(results.map((result) => result.id)).size).toBe(1);
    const id = results[0].id;
    await eventually(() => sink.messagesFor(id).length > 0);
    // Give a second copy every chance to arrive before counting.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(sink.messagesFor(id)).toHaveLength(1);
    const rows = await withDatabase(database, (client) =>
      client.query('select id, status from deliveries where idempotency_key = $1', [input.idempotencyKey]),
    );
    expect(rows.rows).toEqual([{ id, status: 'SENT' }]);
  });

  it('three sends to one number at the same moment on three replicas: exactly one accepted, one SMS', async () => {
    const mobile = '+8613700137000';
    const answers = await Promise.all(
      replicas.map((replica, n) => replica.graphql(sendSmsMutation, { input: { mobile, content: String(100000 + n), wait: false } })),
    );
    const results = answers.map(({ body }) => body.data.sendSms);
    const accepted = results.filter((result) => result.__typename === 'Delivery');
    const refused = results.filter((result) => result.__typename === 'RateLimitedError');
    expect(accepted).toHaveLength(1);
    expect(refused).toHaveLength(2);
    for (const result of refused) {
      expect(result.message).toMatch(/Too many messages to this number \(limit 1 a minute\)/);
      expect(result.retryAfterSeconds).toBeGreaterThanOrEqual(55);
    }
    await eventually(() => aliyun.messages.some((message) => message.phone?.endsWith('13700137000')));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(aliyun.messages.filter((message) => message.phone?.endsWith('13700137000'))).toHaveLength(1);
    const rows = await withDatabase(database, (client) => client.query('select count(*)::int as n from deliveries where recipient = $1', [mobile]));
    expect(rows.rows[0].n).toBe(1);
  });

  it('the per-token rate holds summed over the replicas: 120 sends at once through three, exactly 100 accepted', async () => {
    const token = `ngw_${crypto.randomBytes(16).toString('hex')}`;
    await withDatabase(database, (client) =>
      client.query(`insert into api_tokens (id, name, token_hash, scopes, created_at) values ($1, $2, $3, $4, $5)`, [
        'tok_rate',
        'rate',
        hashToken(token),
        JSON.stringify({ channels: ['EMAIL'], read: 'own' }),
        Date.now(),
      ]),
    );
    const answers = await Promise.all(
      Array.from({ length: 120 }, (_, n) =>
        replicas[n % 3].graphql(
          sendEmailMutation.replace('... on Error { message }', '... on RateLimitedError { message retryAfterSeconds } ... on Error { message }'),
          { input: { to: [`rate${n}@example.com`], subject: `rate #${n}`, content: 'x', wait: false } },
          { token },
        ),
      ),
    );
    const results = answers.map(({ body }) => body.data.sendEmail);
    expect(results.filter((result) => result.__typename === 'Delivery')).toHaveLength(100);
    const refused = results.filter((result) => result.__typename === 'RateLimitedError');
    expect(refused).toHaveLength(20);
    expect(refused[0].message).toMatch(/Too many requests from this token \(limit 100 a minute per token\)/);
    const rows = await withDatabase(database, (client) => client.query(`select count(*)::int as n from deliveries where caller_id = 'tok_rate'`));
    expect(rows.rows[0].n).toBe(100);
  });

  it('a subscription on one replica follows a send made through another, to SENT', async () => {
    const [watcher, sender] = replicas;
    // Queued on the accept-only replica: another one makes the attempt, the watcher is a third.
    const { body } = await acceptOnly.graphql(sendEmailMutation, {
      input: { to: ['watch@example.com'], subject: 'watched', content: 'x', wait: false },
    });
    const id = body.data.sendEmail.id;
    const response = await fetch(`${watcher.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'OPS-Token': testToken },
      body: JSON.stringify({ query: 'subscription($id: ID) { deliveryUpdated(id: $id) { id status attempts } }', variables: { id } }),
    });
    expect(response.status).toBe(200);
    const next = sseReader(response);
    const statuses: string[] = [];
    for (let event = await next(); event && event.event === 'next'; event = await next()) {
      statuses.push(JSON.parse(event.data).data.deliveryUpdated.status);
    }
    expect(statuses.at(-1)).toBe('SENT');
    expect(sink.messagesFor(id)).toHaveLength(1);

    // Over WebSocket too: a graphql-ws subscriber on the watcher follows a delivery sent through another replica.
    const socket = webSocketClient(watcher.url, { 'OPS-Token': testToken });
    const overSocket = subscribe<{ deliveryUpdated: { id: string; status: string } }>(
      socket.client,
      'subscription { deliveryUpdated(channel: EMAIL) { id status } }',
    );
    await socket.client.iterate({ query: '{ viewer { name } }' }).next();
    const viaSocket = await sender.graphql(sendEmailMutation, { input: { to: ['ws@example.com'], subject: 'over a socket', content: 'x', wait: false } });
    const socketId = viaSocket.body.data.sendEmail.id;
    await eventually(() => overSocket.results.some((result) => result.data?.deliveryUpdated.id === socketId && result.data?.deliveryUpdated.status === 'SENT'));
    overSocket.unsubscribe();
    await socket.dispose();

    // Every change from now on, without an id: a send through another replica shows up here.
    const controller = new AbortController();
    const all = await fetch(`${watcher.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'OPS-Token': testToken },
      body: JSON.stringify({ query: 'subscription { deliveryUpdated(channel: EMAIL) { id status } }' }),
      signal: controller.signal,
    });
    const nextOfAll = sseReader(all);
    const seen = new Map<string, string[]>();
    const reading = (async () => {
      for (let event = await nextOfAll(); event; event = await nextOfAll()) {
        const update = JSON.parse(event.data).data.deliveryUpdated;
        seen.set(update.id, [...(seen.get(update.id) ?? []), update.status]);
      }
    })().catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 300));
    const other = await sender.graphql(sendEmailMutation, { input: { to: ['all@example.com'], subject: 'seen elsewhere', content: 'x', wait: false } });
    const otherId = other.body.data.sendEmail.id;
    await eventually(() => seen.get(otherId)?.includes('SENT'));
    // Replicas tell each other ids, and the row is read when the news arrives: a state that lasted less than that
    // (QUEUED, claimed at once) may be skipped, but the order never goes back.
    const order = ['QUEUED', 'SENDING', 'SENT'];
    const steps = seen.get(otherId)!.map((status) => order.indexOf(status));
    expect(steps).toEqual([...steps].sort());
    controller.abort();
    await reading;
  });

  it('a caller waiting for the first attempt gets its answer from the replica that made it', async () => {
    const startedAt = Date.now();
    const { body } = await acceptOnly.graphql(sendEmailMutation, {
      input: { to: ['wait@example.com'], subject: 'waited for', content: 'x' },
    });
    const elapsed = Date.now() - startedAt;
    expect(body.data.sendEmail).toMatchObject({ __typename: 'Delivery', status: 'SENT', attempts: 1 });
    // Answered when the attempt was recorded elsewhere, not when SEND_WAIT_MS (5 s) ran out.
    expect(elapsed).toBeLessThan(4000);
    const attempts = await withDatabase(database, (client) =>
      client.query('select outcome from delivery_attempts where delivery_id = $1', [body.data.sendEmail.id]),
    );
    expect(attempts.rows).toEqual([{ outcome: 'SENT' }]);
    expect(acceptOnly.logs.some((line) => line.deliveryId === body.data.sendEmail.id && line.msg === 'delivery sent')).toBe(false);
  });

  it('a token revoked with the CLI through one database is refused by every replica at its next request', async () => {
    const token = `ngw_${crypto.randomBytes(16).toString('hex')}`;
    await withDatabase(database, (client) =>
      client.query(
        `insert into api_tokens (id, name, token_hash, scopes, created_at) values ($1, $2, $3, $4, $5)`,
        ['tok_replicas', 'replicas', hashToken(token), JSON.stringify({ channels: ['EMAIL'], read: 'own' }), Date.now()],
      ),
    );
    const query = '{ deliveries(first: 1) { edges { node { id } } } }';
    for (const replica of replicas) expect((await replica.graphql(query, {}, { token })).status).toBe(200);
    // A WebSocket connection on each replica under that token: every one is closed with 4403 at its replica's next check.
    const sockets = replicas.map((replica) => webSocketClient(replica.url, { 'OPS-Token': token }));
    for (const socket of sockets) expect((await socket.client.iterate({ query }).next()).value).toMatchObject({ data: { deliveries: {} } });
    const cli = spawn(process.execPath, ['--import', 'tsx', 'src/cli/token.ts', 'revoke', 'replicas'], {
      cwd: root,
      env: { PATH: process.env.PATH, DATABASE_URL: database.url, NOTIFY_SECRET_KEY: testSecretKey, LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    cli.stdout!.on('data', (chunk) => (output += chunk));
    cli.stderr!.on('data', (chunk) => (output += chunk));
    expect(await new Promise((resolve) => cli.on('close', resolve))).toBe(0);
    expect(output).toMatch(/revoked replicas/i);
    for (const replica of [...replicas, acceptOnly]) {
      const refused = await replica.graphql(query, {}, { token });
      expect(refused.status).toBe(401);
      expect(refused.body.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
    }
    for (const socket of sockets) expect(await socket.closed).toEqual({ code: 4403, reason: 'Token revoked' });
  });

  it('losing the database fails readiness on every replica, which recovers alone; nothing accepted is lost', async () => {
    sink.stop();
    const ids: string[] = [];
    for (let n = 0; n < 30; n++) {
      const { body } = await replicas[n % 3].graphql(sendEmailMutation, {
        input: { to: [`outage${n}@example.com`], subject: `before the outage #${n}`, content: 'x', wait: false },
      });
      ids.push(body.data.sendEmail.id);
    }
    // The server refuses this database and ends every session on it: what a restart looks like from the gateway.
    await adminQuery(`alter database ${database.name} allow_connections false`);
    try {
      await adminQuery('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1', [database.name]);
      for (const replica of [...replicas, acceptOnly]) {
        // The listening connection hears of its end a moment after a query fails.
        const ready = await eventually(async () => {
          const answer = await replica.get('/readyz', { token: null });
          return answer.status === 503 && answer.body.checks.liveUpdates === 'failing' && answer;
        });
        expect(ready.body).toMatchObject({ status: 'not ready', checks: { database: 'failing', liveUpdates: 'failing' } });
        expect((await replica.get('/healthz', { token: null })).status).toBe(200);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } finally {
      await adminQuery(`alter database ${database.name} allow_connections true`);
    }
    for (const replica of [...replicas, acceptOnly]) {
      await eventually(async () => (await replica.get('/readyz', { token: null })).status === 200, 20_000).catch((error: unknown) => {
        throw new Error(`a replica did not come back: ${String(error)}\n${replica.stderr()}\n${JSON.stringify(replica.logs.slice(-15))}`);
      });
    }
    await sink.start();
    await eventually(() => ids.every((id) => sink.messagesFor(id).length > 0), 30_000);
    expect(await statusesOnceSent(database, ids)).toEqual([{ status: 'SENT', n: 30 }]);
    // Each replica logged the episode once, not once per poll.
    for (const replica of replicas) {
      expect(replica.logs.filter((line) => line.msg === 'dispatch cycle failed; retrying with backoff').length).toBeLessThanOrEqual(2);
    }
  });
});

describe.skipIf(!postgresAvailable())('a replica that does not fit the database refuses to start', { timeout: 60_000 }, () => {
  it('a schema migrated by a newer gateway: exit 1 with a clear message, nothing written', async () => {
    const database = await createTestDatabase();
    try {
      const first = await spawnGateway({ bundle: true, database });
      await first.stop();
      await withDatabase(database, (client) =>
        client.query('insert into drizzle.__drizzle_migrations (hash, created_at) values ($1, $2)', ['future', Date.now() + 86_400_000]),
      );
      await expect(spawnGateway({ bundle: true, database })).rejects.toThrow(/database schema is newer than this gateway knows/);
    } finally {
      await database.drop();
    }
  });

  it('another NOTIFY_SECRET_KEY than the first replica used: exit 1, naming the setting', async () => {
    const database = await createTestDatabase();
    try {
      const first = await spawnGateway({ bundle: true, database });
      await first.stop();
      const other = crypto.randomBytes(32).toString('hex');
      await expect(spawnGateway({ bundle: true, database, env: { NOTIFY_SECRET_KEY: other } })).rejects.toThrow(
        /NOTIFY_SECRET_KEY.*is not the one this database was first used with/,
      );
    } finally {
      await database.drop();
    }
  });
});
