import fs from 'node:fs';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { copiesAtSink, startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import { eventually } from '../support/gateway';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process';

const sendEmail = `mutation($input: SendEmailInput!) {
  sendEmail(input: $input) { __typename ... on Delivery { id status } ... on Error { code message } }
}`;

const total = 1000;
const concurrency = 16;

function countByStatus(databasePath: string): Record<string, number> {
  const db = new Database(databasePath);
  try {
    const rows = db.prepare('select status, count(*) as n from deliveries group by status').all() as { status: string; n: number }[];
    return Object.fromEntries(rows.map((row) => [row.status, row.n]));
  } finally {
    db.close();
  }
}

function sendingIds(databasePath: string): string[] {
  const db = new Database(databasePath);
  try {
    return (db.prepare("select id from deliveries where status = 'SENDING'").all() as { id: string }[]).map((row) => row.id);
  } finally {
    db.close();
  }
}

function attemptLog(databasePath: string, id: string): unknown[] {
  const db = new Database(databasePath);
  try {
    return db.prepare('select number, started_at, duration_ms, outcome, provider_code from delivery_attempts where delivery_id = ?').all(id);
  } finally {
    db.close();
  }
}

describe('kill -9 during a burst', { timeout: 120_000 }, () => {
  let sink: SmtpSink;
  const gateways: GatewayProcess[] = [];
  afterAll(async () => {
    for (const gateway of gateways) gateway.kill('SIGKILL');
    await sink?.close();
    if (gateways[0]) fs.rmSync(gateways[0].dir, { recursive: true, force: true });
  });

  it('after SIGKILL and a restart on the same database every accepted message reaches the SMTP server; duplicates ≤ attempts in flight', async () => {
    sink = await startSmtpSink();
    const env = {
      SMTP_URL: sink.url,
      DISPATCH_CONCURRENCY: String(concurrency),
      SMTP_POOL_SIZE: String(concurrency),
      // Generous: an attempt abandoned by a timeout after the server took the message is another source of duplicates.
      PROVIDER_TIMEOUT_MS: '30000',
      DISPATCH_POLL_MS: '100',
      RETRY_BASE_DELAY_MS: '100',
      RETRY_MAX_DELAY_MS: '1000',
      SEND_WAIT_MS: '0',
    };
    const spawnedAt = Date.now();
    const first = await spawnGateway({ env });
    const firstListeningMs = Date.now() - spawnedAt;
    gateways.push(first);

    // A client that retries with the same idempotency key until it gets an answer, as a careful caller does.
    const accepted = new Map<number, string>();
    const unanswered = new Set<number>();
    const send = async (gateway: GatewayProcess, n: number) => {
      const { body } = await gateway.graphql(sendEmail, {
        input: { to: [`oncall${n % 7}@example.com`], subject: `burst #${n}`, content: `message ${n}`, idempotencyKey: `burst-${n}`, wait: false },
      });
      const result = body.data?.sendEmail;
      if (result?.__typename !== 'Delivery') throw new Error(`not accepted: ${JSON.stringify(body)}`);
      const earlier = accepted.get(n);
      if (earlier !== undefined && earlier !== result.id) throw new Error(`key burst-${n} answered two deliveries`);
      accepted.set(n, result.id);
      unanswered.delete(n);
    };

    let next = 0;
    let killedAt: number | undefined;
    const clients = Array.from({ length: 8 }, async () => {
      while (next < total) {
        const n = next++;
        try {
          await send(first, n);
        } catch {
          unanswered.add(n);
        }
      }
    });
    // Kill while requests still arrive and the dispatcher is busy sending.
    await eventually(() => sink.messages.length >= 200 && accepted.size >= 500, 30_000);
    first.kill('SIGKILL');
    killedAt = Date.now();
    const acceptedAtKill = accepted.size;
    const deliveredAtKill = new Set(sink.messages.map((message) => message.deliveryId)).size;
    await Promise.all(clients);
    expect(await first.exited).toMatchObject({ signal: 'SIGKILL' });

    const atKill = countByStatus(first.databasePath);
    const inFlight = sendingIds(first.databasePath);
    const unfinished = (atKill.QUEUED ?? 0) + (atKill.RETRYING ?? 0) + inFlight.length;
    expect(unfinished).toBeGreaterThan(0);
    expect(inFlight.length).toBeLessThanOrEqual(concurrency);

    const restartedAt = Date.now();
    const second = await spawnGateway({ dir: first.dir, env });
    gateways.push(second);
    const listeningAt = Date.now();
    // Requests whose answer was lost in the kill are sent again with their keys: recorded ones answer the original.
    const unansweredAtKill = unanswered.size;
    const again = [...unanswered];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let n = again.shift(); n !== undefined; n = again.shift()) await send(second, n);
      }),
    );
    expect(accepted.size).toBe(total);
    expect(new Set(accepted.values()).size).toBe(total);

    const ids = [...accepted.values()];
    await eventually(() => ids.every((id) => sink.messagesFor(id).length > 0), 60_000);
    const drainedAt = Date.now();
    await eventually(() => countByStatus(first.databasePath).SENT === total, 10_000);

    const { delivered, duplicated, duplicates, unknown } = copiesAtSink(sink.messages, ids);
    expect(unknown).toEqual([]);
    // A duplicate can only come from an attempt in flight at the kill.
    expect(duplicates).toBeLessThanOrEqual(inFlight.length);
    expect(duplicates).toBeLessThanOrEqual(concurrency);
    const unexplained = duplicated.filter(([id]) => !inFlight.includes(id)).map(([id]) => ({ id, attempts: attemptLog(first.databasePath, id) }));
    expect(unexplained).toEqual([]);
    expect(second.logs.some((line) => line.msg === 'picked up deliveries caught mid-attempt by the last stop' && line.released === inFlight.length)).toBe(
      inFlight.length > 0,
    );

    console.log(
      JSON.stringify({
        accepted: accepted.size,
        acceptedAtKill,
        deliveredAtKill,
        unansweredAtKill,
        firstListeningMs,
        statusAtKill: atKill,
        inFlightAtKill: inFlight.length,
        delivered,
        messagesAtSink: sink.messages.length,
        duplicates,
        restartToListeningMs: listeningAt - restartedAt,
        drainAfterRestartMs: drainedAt - restartedAt,
        killToDrainedMs: drainedAt - killedAt,
      }),
    );
    expect(await second.stop()).toEqual({ code: 0, signal: null });
  });
});
