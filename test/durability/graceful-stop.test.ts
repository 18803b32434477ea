import fs from 'node:fs';
import http from 'node:http';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../support/gateway';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process';

/** A DingTalk stand-in that takes its time: answers success `delayMs` after each request arrives. */
async function startSlowDingTalk(initialDelayMs: number) {
  let delayMs = initialDelayMs;
  const received: { accessToken: string; at: number }[] = [];
  let answered = 0;
  const server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const accessToken = new URL(request.url ?? '/', 'http://x').searchParams.get('access_token') ?? '';
      received.push({ accessToken, at: Date.now() });
      setTimeout(() => {
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ errcode: 0, errmsg: 'ok' }), () => answered++);
      }, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    received,
    get answered() {
      return answered;
    },
    set delayMs(value: number) {
      delayMs = value;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const sendDing = `mutation($input: SendDingInput!) { sendDing(input: $input) { __typename ... on Delivery { id status } } }`;

function statuses(databasePath: string): Record<string, string> {
  const db = new Database(databasePath, { readonly: true });
  try {
    const rows = db.prepare('select id, status from deliveries').all() as { id: string; status: string }[];
    return Object.fromEntries(rows.map((row) => [row.id, row.status]));
  } finally {
    db.close();
  }
}

/** A request on a new connection: true when the gateway still accepts connections. */
function accepts(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.request(`${url}/healthz`, { agent: false }, (response) => {
      response.resume();
      resolve(true);
    });
    request.on('error', () => resolve(false));
    request.end();
  });
}

const processes: GatewayProcess[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const process of processes.splice(0)) process.kill('SIGKILL');
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function burst(gateway: GatewayProcess, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let n = 0; n < count; n++) {
    const { body } = await gateway.graphql(sendDing, {
      input: { accessToken: `robot-${n}`, secret: `SEC-robot-${n}`, content: `alert ${n}`, wait: false },
    });
    expect(body.data.sendDing.__typename).toBe('Delivery');
    ids.push(body.data.sendDing.id);
  }
  return ids;
}

describe('SIGTERM', { timeout: 90_000 }, () => {
  it('attempts under way finish and the process exits 0; past SHUTDOWN_TIMEOUT_MS it exits 0 too; nothing is lost', async () => {
    const peer = await startSlowDingTalk(1500);
    cleanups.push(peer.close);
    const env = { DINGTALK_BASE_URL: peer.url, DISPATCH_CONCURRENCY: '3', SHUTDOWN_TIMEOUT_MS: '10000', PROVIDER_TIMEOUT_MS: '8000' };
    const first = await spawnGateway({ env });
    processes.push(first);
    cleanups.push(async () => fs.rmSync(first.dir, { recursive: true, force: true }));
    const ids = await burst(first, 8);
    const robotOf = (index: number) => `robot-${index}`;
    const received = (index: number) => peer.received.filter((request) => request.accessToken === robotOf(index)).length;

    // 1. Within the deadline: the three attempts under way (1.5 s each) finish, then the process exits 0.
    await eventually(() => peer.received.length === 3);
    // A caller waiting for the first attempt of its message (no free slot): answered at the stop, not cut off.
    const waiting = first.graphql(sendDing, { input: { accessToken: robotOf(8), secret: 'SEC-robot-8', content: 'alert 8' } });
    await eventually(() => Object.keys(statuses(first.databasePath)).length === 9);
    let signalledAt = Date.now();
    first.kill('SIGTERM');
    await eventually(async () => !(await accepts(first.url)), 1000);
    expect((await waiting).body.data.sendDing).toMatchObject({ __typename: 'Delivery', status: 'QUEUED' });
    ids.push((await waiting).body.data.sendDing.id);
    expect(await first.exited).toEqual({ code: 0, signal: null });
    const gracefulStopMs = Date.now() - signalledAt;
    expect(peer.answered).toBe(3);
    let now = statuses(first.databasePath);
    expect(Object.values(now).filter((status) => status === 'SENT')).toHaveLength(3);
    expect(Object.values(now).filter((status) => status === 'QUEUED')).toHaveLength(6);
    expect(first.logs.some((line) => line.msg === 'stopped')).toBe(true);
    expect(first.logs.some((line) => String(line.msg).startsWith('attempts still under way'))).toBe(false);

    // 2. Past the deadline: the peer now takes 4 s, the gateway allows 300 ms, and still exits 0.
    peer.delayMs = 4000;
    const second = await spawnGateway({ dir: first.dir, env: { ...env, SHUTDOWN_TIMEOUT_MS: '300' } });
    processes.push(second);
    expect(second.logs.some((line) => line.msg === 'picked up deliveries caught mid-attempt by the last stop')).toBe(false);
    await eventually(() => peer.received.length === 6, 10_000);
    signalledAt = Date.now();
    second.kill('SIGTERM');
    expect(await second.exited).toEqual({ code: 0, signal: null });
    const deadlineStopMs = Date.now() - signalledAt;
    expect(deadlineStopMs).toBeLessThan(4000);
    expect(second.logs.some((line) => String(line.msg).startsWith('attempts still under way at the deadline'))).toBe(true);
    now = statuses(first.databasePath);
    const cutShort = Object.entries(now).filter(([, status]) => status !== 'SENT' && status !== 'QUEUED');
    expect(cutShort).toHaveLength(3);
    expect(Object.values(now).filter((status) => status === 'QUEUED')).toHaveLength(3);

    // 3. The next start sends what was cut short (again: the peer had it) and the rest; each robot's message arrives,
    //    and only the three cut short arrive twice.
    peer.delayMs = 50;
    const third = await spawnGateway({ dir: first.dir, env });
    processes.push(third);
    await eventually(() => Object.values(statuses(first.databasePath)).every((status) => status === 'SENT'), 20_000);
    const counts = ids.map((_, index) => received(index));
    expect(counts.every((count) => count >= 1)).toBe(true);
    const twice = ids.filter((_, index) => counts[index] === 2);
    expect(twice.sort()).toEqual(cutShort.map(([id]) => id).sort());
    expect(counts.filter((count) => count > 2)).toHaveLength(0);
    expect(await third.stop()).toEqual({ code: 0, signal: null });
    console.log(
      JSON.stringify({ gracefulStopMs, inFlightAtSigterm: 3, lostAfterGracefulStop: 0, deadlineStopMs, inFlightAtDeadline: cutShort.length, cutShortStatuses: cutShort.map(([, status]) => status), duplicates: twice.length }),
    );
  });
});
