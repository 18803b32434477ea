import crypto from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { busiestMinute, startDingTalkEmulator, type DingTalkEmulator } from '../peers/ding-talk-emulator';
import { eventually } from '../support/gateway';
import type { GatewayProcess } from '../support/gateway-process';
import { createTestDatabase, postgresAvailable, withDatabase, type TestDatabase } from '../support/postgres';
import { startReplicas } from '../support/replicas';

// DingTalk takes 20 messages a minute per robot and mutes it for 10 minutes past that. With three replicas sending
// for one robot, the allowance is shared: the pacing counts attempts and reservations in the database, under a lock
// per robot, so the robot gets DINGTALK_ROBOT_PER_MINUTE (19) in any minute summed over all replicas. This test runs
// on the real clock into the second minute (about 65 s): the first minute's 19, then the next ones a minute later.

const minuteMs = 60_000;

const sendDing = `mutation($input: SendDingInput!) {
  sendDing(input: $input) { __typename ... on Delivery { id status } ... on Error { message } }
}`;

describe.skipIf(!postgresAvailable())('DingTalk pacing summed over three replicas', { timeout: 180_000 }, () => {
  let database: TestDatabase;
  let emulator: DingTalkEmulator;
  let replicas: GatewayProcess[] = [];
  afterAll(async () => {
    await Promise.all(replicas.map((replica) => replica.stop()));
    await emulator?.close();
    await database?.drop();
  });

  it('60 messages to one robot through three replicas: never more than DingTalk\'s 20 in a minute, never muted, the rest wait their turn', async () => {
    const robot = { accessToken: crypto.randomBytes(32).toString('hex'), secret: `SEC${crypto.randomBytes(32).toString('hex')}` };
    emulator = await startDingTalkEmulator({ robots: { [robot.accessToken]: robot.secret } });
    database = await createTestDatabase();
    // A few attempts at a time per replica, so that none can claim the whole storm alone: all three send.
    // Pacing alone: digests (on by default) would fold the waiting ones; test/replicas/digest.test.ts covers them.
    replicas = await startReplicas(3, database, {
      DINGTALK_BASE_URL: emulator.url,
      DISPATCH_POLL_MS: '100',
      DISPATCH_CONCURRENCY: '3',
      ROBOT_DIGEST: 'off',
    });

    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, n) =>
        replicas[n % 3].graphql(sendDing, { input: { ...robot, content: `告警 #${n}`, wait: false } }),
      ),
    );
    const ids = answers.map(({ body }) => body.data.sendDing.id as string);
    expect(ids.every(Boolean)).toBe(true);
    const firstSentAt = await eventually(() => emulator.messages.length >= 19 && emulator.messages[0].receivedAt, 20_000);

    // The first minute: 19, from all three replicas together, and the rest waiting with a turn after it.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(emulator.messages).toHaveLength(19);
    const senders = await withDatabase(database, async (client) => {
      const { rows } = await client.query<{ status: string; n: number; earliest: number }>(
        `select status, count(*)::int as n, min(next_attempt_at)::float8 as earliest from deliveries group by status`,
      );
      return rows;
    });
    expect(senders.find((row) => row.status === 'SENT')?.n).toBe(19);
    expect(senders.find((row) => row.status === 'QUEUED')).toMatchObject({ n: 41 });
    expect(senders.find((row) => row.status === 'QUEUED')!.earliest).toBeGreaterThanOrEqual(firstSentAt + minuteMs - 1000);

    // Into the second minute: the next ones go out once the first minute's have aged out, still 19 at most. On a
    // loaded machine (the whole suite on 2 cores) they can come well after the minute: the failure says what the
    // deliveries and the replicas were doing then.
    await eventually(() => emulator.messages.length >= 25, 100_000).catch(async (error: Error) => {
      const statuses = await withDatabase(database, (client) =>
        client.query('select status, count(*)::int as n, min(next_attempt_at)::float8 as earliest, max(attempts) as attempts from deliveries group by status'),
      );
      const warnings = replicas.flatMap((replica, n) => replica.logs.filter((line) => line.level >= 40).map((line) => ({ replica: n, ...line })));
      throw new Error(
        `${error.message}: ${emulator.messages.length} messages, first at ${firstSentAt}, now ${Date.now()}; ` +
          `deliveries ${JSON.stringify(statuses.rows)}; warnings ${JSON.stringify(warnings.slice(-20))}`,
      );
    });
    // The gateway counts 19 by when each attempt started; the emulator counts arrivals, a few ms later each and not
    // always by the same few: DingTalk's own limit of 20 is what must hold there (and it would refuse the 21st).
    expect(busiestMinute(emulator.messages)).toBeLessThanOrEqual(20);
    expect(emulator.rejected).toBe(0);
    expect(emulator.mutedUntil(robot.accessToken)).toBeUndefined();
    expect(new Set(emulator.messages.map((message) => message.body.text.content)).size).toBe(emulator.messages.length);
    // More than one replica took part in sending.
    const sentBy = replicas.filter((replica) => replica.logs.some((line) => line.msg === 'delivery sent'));
    expect(sentBy.length).toBeGreaterThan(1);
  });
});
