import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { startDingTalkEmulator } from '../peers/ding-talk-emulator';
import { eventually, startGateway } from '../support/gateway';

// The BENCHMARKS.md row for alert-storm digests, on the real clock (minutes long): BENCH_DIGEST=1 npx vitest run
// test/digest/digest-bench.test.ts. Skipped otherwise. Writes test-output/digest-storm.json.

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sendDing = `mutation($input: SendDingInput!) { sendDing(input: $input) { __typename ... on Delivery { id } ... on Error { message } } }`;

async function storm(count: number, env: Record<string, string>) {
  fs.mkdirSync('test-output', { recursive: true });
  const robot = { accessToken: crypto.randomBytes(32).toString('hex'), secret: `SEC${crypto.randomBytes(32).toString('hex')}` };
  const emulator = await startDingTalkEmulator({ robots: { [robot.accessToken]: robot.secret } });
  cleanups.push(() => emulator.close());
  const gateway = await startGateway({ env: { DINGTALK_BASE_URL: emulator.url, ...env } });
  cleanups.push(() => gateway.close());
  const firstAt = Date.now();
  const ids: string[] = [];
  // Sent while the dispatcher runs, 50 at a time: the storm arrives over a few seconds.
  for (let start = 0; start < count; start += 50) {
    const answers = await Promise.all(
      Array.from({ length: Math.min(50, count - start) }, (_, k) =>
        gateway.graphql(sendDing, { input: { ...robot, content: `alert ${start + k}: disk full on host-${start + k}`, wait: false } }),
      ),
    );
    ids.push(...answers.map(({ body }) => body.data.sendDing.id as string));
  }
  const sentAllAt = Date.now();
  const progress = setInterval(async () => {
    const rows = await gateway.store.getDeliveries(ids);
    const counts: Record<string, number> = {};
    for (const row of rows) counts[row.status] = (counts[row.status] ?? 0) + 1;
    fs.appendFileSync('test-output/digest-storm.progress', `${Date.now() - firstAt} ms ${JSON.stringify(counts)} messages ${emulator.messages.length} rejected ${emulator.rejected}\n`);
  }, 5000);
  cleanups.push(() => clearInterval(progress));
  await eventually(async () => (await gateway.store.getDeliveries(ids)).every((row) => row.status === 'SENT'), 10 * 60_000);
  const lastAt = Math.max(...emulator.messages.map((message) => message.receivedAt));
  const result = {
    count,
    env,
    arrivalMs: sentAllAt - firstAt,
    firstToLastDeliveredMs: lastAt - firstAt,
    providerMessages: emulator.messages.length,
    rejected: emulator.rejected,
  };
  fs.appendFileSync('test-output/digest-storm.progress', `${JSON.stringify(result)}\n`);
  return result;
}

it.skipIf(!process.env.BENCH_DIGEST)('alert storm to one DingTalk robot: first alert to last delivered, with and without digests', async () => {
  const withDigests = await storm(1000, {});
  const without = await storm(Number(process.env.BENCH_DIGEST_OFF_COUNT ?? 25), { ROBOT_DIGEST: 'off' });
  const result = { withDigests, without };
  fs.mkdirSync('test-output', { recursive: true });
  fs.writeFileSync('test-output/digest-storm.json', JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result));
}, 15 * 60_000);
