import fs from 'node:fs';
import path from 'node:path';
import autocannon, { type Result } from 'autocannon';
import { acceptRequests, bundles, deliveriesPage, percentile, postGraphql, record, startGateway, token, work } from './harness';
import { seedDeliveries } from './seed';

/** Expired rows to purge (BENCH_PURGE_ROWS, default 1,000,000); accepts are paced at BENCH_PURGE_RATE per second. */
const purgeRows = Number(process.env.BENCH_PURGE_ROWS ?? 1_000_000);
const acceptRate = Number(process.env.BENCH_PURGE_RATE ?? 500);
const longestRunS = Number(process.env.BENCH_PURGE_MAX_S ?? 1800);

interface LoadFigures {
  acceptP99: number;
  queryP99: number;
  accepted: number;
  queries: number;
  /** The retention pass's own report, when one ran. */
  pass?: { purged: number; redacted: number; ms: number };
}

/**
 * Accepts (GraphQL sendEmail at a fixed rate) and the first page of `deliveries` (one client, back to back) on a seeded
 * database, for `runS` seconds or, with `purge`, for as long as a retention pass purging the expired rows takes.
 */
async function underLoad(databasePath: string, purge: boolean, runS: number, load = true): Promise<LoadFigures> {
  const server = await startGateway(path.join(bundles, 'gateway-accept.js'), {
    DATABASE_URL: `file:${databasePath}`,
    OPS_TOKENS: token,
    SEND_WAIT_MS: '0',
    DELIVERY_RETENTION_DAYS: '1',
    CONTENT_RETENTION_DAYS: '1',
    BENCH_PURGE_NOW: purge ? '1' : '0',
  });
  const logFile = fs.readdirSync(work).map((name) => path.join(work, name)).filter((file) => file.includes(`-${server.port}.log`))[0]!;
  // The gateway's log is read for the pass's line a few times a second, from where the last look stopped: reading the
  // whole growing file before every query would load the client (and so the figures) of the run with the pass only.
  let pass: LoadFigures['pass'];
  let logRead = 0;
  const lookForPass = () => {
    const size = fs.statSync(logFile).size;
    if (size <= logRead) return;
    const fd = fs.openSync(logFile, 'r');
    const chunk = Buffer.alloc(size - logRead);
    fs.readSync(fd, chunk, 0, chunk.length, logRead);
    fs.closeSync(fd);
    const text = chunk.toString('utf8');
    const complete = text.lastIndexOf('\n') + 1;
    logRead += Buffer.byteLength(text.slice(0, complete));
    const line = text.slice(0, complete).split('\n').find((entry) => entry.includes('retention pass finished'));
    if (line) pass = JSON.parse(line) as LoadFigures['pass'];
  };
  // And the WAL file's size, which a pass must not leave grown.
  let walPeak = 0;
  const walSize = () => (walPeak = Math.max(walPeak, fs.statSync(`${databasePath}-wal`, { throwIfNoEntry: false })?.size ?? 0));
  const watcher = setInterval(() => {
    walSize();
    if (purge) lookForPass();
  }, 250);
  const deadline = performance.now() + (purge ? longestRunS : runS) * 1000;
  const done = () => performance.now() > deadline || pass !== undefined;
  const queryTimes: number[] = [];
  const queries = (async () => {
    while (load && !done()) {
      const started = performance.now();
      await postGraphql(server.port, deliveriesPage, { first: 20 });
      queryTimes.push(performance.now() - started);
    }
  })();
  // Every accept's latency, not autocannon's per-run percentiles: the run is cut in 2 s slices to end with the pass.
  const acceptLatencies: number[] = [];
  let accepted = 0;
  while (!load && !done()) await new Promise((resolve) => setTimeout(resolve, 250));
  while (load && !done()) {
    const result = await new Promise<Result>((resolve, reject) => {
      const slice = autocannon(
        { connections: 10, duration: 2, overallRate: acceptRate, ...acceptRequests.graphql(server.port) },
        (error, answer) => (error ? reject(error) : resolve(answer)),
      );
      slice.on('response', (_client, _status, _bytes, ms: number) => acceptLatencies.push(ms));
    });
    accepted += result['2xx'];
  }
  await queries;
  clearInterval(watcher);
  if (purge) lookForPass();
  const peakRssMb = server.peakRssMb();
  walSize();
  const walMb = (walPeak / 1e6).toFixed(0);
  await server.stop();
  if (!load) {
    console.log(`  the pass alone, no load: ${pass ? `${pass.purged} rows in ${(pass.ms / 1000).toFixed(1)} s` : 'not finished'}; peak RSS ${peakRssMb.toFixed(0)} MB, WAL at most ${walMb} MB`);
    return { acceptP99: 0, queryP99: 0, accepted: 0, queries: 0, pass };
  }
  console.log(
    `  ${purge ? 'with the pass' : 'without'}: ${acceptLatencies.length} accepts p50/p99/p99.9 ${[50, 99, 99.9].map((p) => percentile(acceptLatencies, p).toFixed(1)).join(' / ')} ms; ` +
      `${queryTimes.length} queries p50/p99/p99.9 ${[50, 99, 99.9].map((p) => percentile(queryTimes, p).toFixed(1)).join(' / ')} ms; ` +
      `peak RSS ${peakRssMb.toFixed(0)} MB, WAL at most ${walMb} MB`,
  );
  return { acceptP99: percentile(acceptLatencies, 99), queryP99: percentile(queryTimes, 99), accepted, queries: queryTimes.length, pass };
}

/** `npm run bench` part `purge`: the retention pass under load against the same load without it. */
export async function purgeUnderLoad(freshDatabase: (name: string) => string): Promise<void> {
  // seedDeliveries spreads rows over 30 days: with DELIVERY_RETENTION_DAYS=1, 29 in 30 have expired.
  const seeded = freshDatabase('purge-seeded');
  const total = Math.ceil((purgeRows * 30) / 29);
  const seedStarted = performance.now();
  seedDeliveries(seeded, total, 0);
  console.log(`seeded ${total} deliveries for the purge in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);
  const copy = path.join(work, 'purge-run.db');
  fs.copyFileSync(seeded, copy);
  const withPurge = await underLoad(copy, true, 0);
  if (!withPurge.pass) console.warn(`  the retention pass did not finish within ${longestRunS} s`);
  fs.rmSync(copy);
  fs.rmSync(`${copy}-wal`, { force: true });
  fs.rmSync(`${copy}-shm`, { force: true });
  fs.copyFileSync(seeded, copy);
  const runS = Math.max(10, Math.ceil((withPurge.pass?.ms ?? longestRunS * 1000) / 1000));
  const without = await underLoad(copy, false, runS);
  // And how long the same pass takes when nobody calls: the first pass after an upgrade on a quiet night.
  for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${copy}${suffix}`, { force: true });
  fs.copyFileSync(seeded, copy);
  const alone = await underLoad(copy, true, 0, false);
  const compared = [
    [`accept p99 at ${acceptRate}/s while purging ${withPurge.pass?.purged ?? '?'} rows, ms`, withPurge.acceptP99, without.acceptP99],
    ['`deliveries(first: 20)` p99 while purging, ms', withPurge.queryP99, without.queryP99],
  ] as const;
  for (const [measure, purging, alone] of compared) {
    const ratio = purging / Math.max(alone, 0.001);
    record(measure, purging.toFixed(1), `no purge ${alone.toFixed(1)}`, `${ratio.toFixed(2)}×`, '≤ 1.5×', ratio <= 1.5);
  }
  record(
    'retention pass: rows purged (+ redacted), total time, s',
    withPurge.pass ? `${withPurge.pass.purged} (+${withPurge.pass.redacted}) in ${(withPurge.pass.ms / 1000).toFixed(1)}` : 'not finished',
    alone.pass ? `no load: ${(alone.pass.ms / 1000).toFixed(1)}` : 'no load: not finished',
    '',
    '',
    undefined,
  );
}
