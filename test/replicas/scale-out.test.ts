import { afterAll, describe, expect, it } from 'vitest';
import { copiesAtSink, startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import { eventually } from '../support/gateway';
import type { GatewayProcess } from '../support/gateway-process';
import { createTestDatabase, postgresAvailable, withDatabase, type TestDatabase } from '../support/postgres';
import { sendEmailMutation, startReplicas, statusesOnceSent } from '../support/replicas';

// 10,000 emails through three replicas on one PostgreSQL database, half over GraphQL and half over the legacy REST
// route, and one replica killed (SIGKILL) in the middle: every accepted message must reach the SMTP server, and a
// message may arrive twice only if it was in an attempt on the killed replica (its claim lapsed and another replica
// sent it again; each such claim is recorded as an INTERRUPTED attempt).

const total = 10_000;
const concurrency = 16;

describe.skipIf(!postgresAvailable())('scale out: 10,000 emails over three replicas, one killed mid-run', { timeout: 420_000 }, () => {
  let database: TestDatabase;
  let sink: SmtpSink;
  let replicas: GatewayProcess[] = [];
  afterAll(async () => {
    for (const replica of replicas) replica.kill('SIGKILL');
    await sink?.close();
    await database?.drop();
  });

  it('every accepted message arrives; duplicates only from the killed replica, at most its attempts in flight', async () => {
    database = await createTestDatabase();
    sink = await startSmtpSink();
    replicas = await startReplicas(3, database, {
      SMTP_URL: sink.url,
      DISPATCH_CONCURRENCY: String(concurrency),
      SMTP_POOL_SIZE: '4',
      DISPATCH_POLL_MS: '100',
      RETRY_BASE_DELAY_MS: '100',
      RETRY_MAX_DELAY_MS: '1000',
      // A lapsed claim is what moves a dead replica's work on; short here so the test does not wait long for it.
      PROVIDER_TIMEOUT_MS: '5000',
      CLAIM_LEASE_MS: '9000',
      SEND_WAIT_MS: '0',
    });
    const [victim, ...survivors] = replicas;
    const startedAt = Date.now();

    // Careful clients: each request carries an idempotency key and is sent again (to a surviving replica) when its
    // answer is lost, so "accepted" is exactly the set of keys the gateway answered with a delivery.
    const accepted = new Map<number, string>();
    const send = async (replica: GatewayProcess, n: number): Promise<void> => {
      const key = `scale-${n}`;
      let id: string | undefined;
      if (n % 2 === 0) {
        const { body } = await replica.graphql(sendEmailMutation, {
          input: { to: [`oncall${n % 11}@example.com`], subject: `alert #${n}`, content: `message ${n}`, idempotencyKey: key, wait: false },
        });
        if (body.data?.sendEmail?.__typename === 'Delivery') id = body.data.sendEmail.id;
      } else {
        const query = new URLSearchParams({ email: `oncall${n % 11}@example.com`, content: `message ${n}` });
        const { body } = await replica.get(`/api/third/email/sendMsg?${query}`, { headers: { 'Idempotency-Key': key } });
        if (body.code === 1000) id = body.deliveryId;
      }
      if (!id) throw new Error(`#${n} not accepted`);
      const earlier = accepted.get(n);
      if (earlier !== undefined && earlier !== id) throw new Error(`key ${key} answered two deliveries`);
      accepted.set(n, id);
    };

    let next = 0;
    let killed = false;
    const unanswered: number[] = [];
    const clients = Array.from({ length: 24 }, async (_, client) => {
      while (next < total) {
        const n = next++;
        const replica = replicas[client % 3];
        if (killed && replica === victim) {
          unanswered.push(n);
          continue;
        }
        try {
          await send(replica, n);
        } catch {
          unanswered.push(n);
        }
      }
    });
    // Killed while requests still arrive on it and its dispatcher is busy sending.
    await eventually(() => accepted.size >= 3000 && sink.messages.length >= 1000, 120_000);
    victim.kill('SIGKILL');
    killed = true;
    const killedAt = Date.now();
    const acceptedAtKill = accepted.size;
    await Promise.all(clients);
    expect(await victim.exited).toMatchObject({ signal: 'SIGKILL' });
    // Requests to the dead replica and answers lost in the kill go again, with their keys, to the survivors.
    await Promise.all(
      survivors.map(async (replica) => {
        for (let n = unanswered.shift(); n !== undefined; n = unanswered.shift()) await send(replica, n);
      }),
    );
    expect(accepted.size).toBe(total);
    const ids = [...accepted.values()];
    expect(new Set(ids).size).toBe(total);

    await eventually(() => ids.every((id) => sink.messagesFor(id).length > 0), 180_000);
    const drainedAt = Date.now();
    expect(await statusesOnceSent(database)).toEqual([{ status: 'SENT', n: total }]);
    const rows = await withDatabase(database, async (client) => ({
      interrupted: (
        await client.query<{ id: string }>(`select distinct delivery_id as id from delivery_attempts where outcome = 'INTERRUPTED'`)
      ).rows.map((row) => row.id),
    }));

    const { duplicated, duplicates, unknown } = copiesAtSink(sink.messages, ids);
    expect(unknown).toEqual([]);
    // Only the killed replica's claims lapse (the others finish their attempts within the lease): those are the
    // INTERRUPTED attempts, at most its DISPATCH_CONCURRENCY, and every duplicate is one of them.
    expect(rows.interrupted.length).toBeLessThanOrEqual(concurrency);
    expect(duplicates).toBeLessThanOrEqual(rows.interrupted.length);
    const unexplained = duplicated.filter(([id]) => !rows.interrupted.includes(id));
    const unexplainedAttempts = unexplained.length
      ? await withDatabase(database, async (client) =>
          (
            await client.query(
              `select delivery_id, number, outcome, provider_code, provider_message, started_at, duration_ms from delivery_attempts
               where delivery_id = any($1) order by delivery_id, number`,
              [unexplained.map(([id]) => id)],
            )
          ).rows,
        )
      : [];
    expect({ unexplained, unexplainedAttempts }).toEqual({ unexplained: [], unexplainedAttempts: [] });
    // The survivors picked the dead replica's claims up once they lapsed.
    const pickedUp = survivors.flatMap((replica) => replica.logs.filter((line) => line.msg === 'picked up deliveries whose claim ran out'));
    expect(pickedUp.reduce((sum, line) => sum + line.released, 0)).toBe(rows.interrupted.length);

    console.log(
      JSON.stringify({
        accepted: accepted.size,
        acceptedAtKill,
        interruptedClaims: rows.interrupted.length,
        duplicates,
        messagesAtSink: sink.messages.length,
        seconds: (drainedAt - startedAt) / 1000,
        killToDrainedSeconds: (drainedAt - killedAt) / 1000,
      }),
    );
    for (const replica of survivors) expect(await replica.stop()).toEqual({ code: 0, signal: null });
  });
});
