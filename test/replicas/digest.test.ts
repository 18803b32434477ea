import crypto from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { busiestMinute, startDingTalkEmulator, type DingTalkEmulator } from '../peers/ding-talk-emulator';
import { eventually } from '../support/gateway';
import type { GatewayProcess } from '../support/gateway-process';
import { createTestDatabase, postgresAvailable, withDatabase, type TestDatabase } from '../support/postgres';
import { startReplicas } from '../support/replicas';

// Two gateway processes (the bundle npm start runs) on one PostgreSQL database, both folding the same storm for one
// robot: the fold happens in the store's transaction, so no delivery is carried by two digests nor sent alone as well.

const sendDing = `mutation($input: SendDingInput!) {
  sendDing(input: $input) { __typename ... on Delivery { id } ... on Error { message } }
}`;

describe.skipIf(!postgresAvailable())('alert-storm digests over two replicas', { timeout: 180_000 }, () => {
  let database: TestDatabase;
  let emulator: DingTalkEmulator;
  let replicas: GatewayProcess[] = [];
  afterAll(async () => {
    await Promise.all(replicas.map((replica) => replica.stop()));
    await emulator?.close();
    await database?.drop();
  });

  it('300 alerts sent through two replicas: all SENT in digests within two minutes, each text received exactly once', async () => {
    const robot = { accessToken: crypto.randomBytes(32).toString('hex'), secret: `SEC${crypto.randomBytes(32).toString('hex')}` };
    emulator = await startDingTalkEmulator({ robots: { [robot.accessToken]: robot.secret } });
    database = await createTestDatabase();
    replicas = await startReplicas(2, database, { DINGTALK_BASE_URL: emulator.url, DISPATCH_POLL_MS: '100', DISPATCH_CONCURRENCY: '3' });

    const ids: string[] = [];
    for (let start = 0; start < 300; start += 50) {
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, k) =>
          replicas[(start + k) % 2].graphql(sendDing, { input: { ...robot, content: `replica alert ${start + k}.`, wait: false } }),
        ),
      );
      ids.push(...answers.map(({ body }) => body.data.sendDing.id as string));
    }
    // Whatever the first slots sent alone, the rest is folded: within two minutes, not a minute per 19.
    const rows = await eventually(
      () =>
        withDatabase(database, async (client) => {
          const { rows } = await client.query<{ id: string; status: string; digest_id: string | null }>(
            'select id, status, digest_id from deliveries',
          );
          return rows.length === 300 && rows.every((row) => row.status === 'SENT') && rows;
        }),
      100_000,
    );
    expect(rows.filter((row) => row.digest_id !== null).length).toBeGreaterThan(250);
    const texts = emulator.messages
      .map((message) => (message.body.msgtype === 'markdown' ? message.body.markdown.text : message.body.text.content) as string)
      .join('\n');
    for (let n = 0; n < 300; n++) expect(texts.split(`replica alert ${n}.`)).toHaveLength(2);
    expect(busiestMinute(emulator.messages)).toBeLessThanOrEqual(20);
    expect(emulator.rejected).toBe(0);
    expect(emulator.mutedUntil(robot.accessToken)).toBeUndefined();
  });
});
