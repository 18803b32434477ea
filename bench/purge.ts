import fs from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { acceptRequests, bundles, deliveriesPage, percentile, postGraphql, record, startGateway, token, work } from './harness';
import { seedDeliveries } from './seed';

/** Expired rows to purge (BENCH_PURGE_ROWS, default 1,000,000); accepts are paced at BENCH_PURGE_RATE per second. */
const purgeRows = Number(process.env.BENCH_PURGE_ROWS ?? 1_000_000);
const acceptRate = Number(process.env.BENCH_PURGE_RATE ?? 500);
const longestRunS = Number(process.env.BENCH_PURGE_MAX_S ?? 900);

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
async function underLoad(databasePath: string, purge: boolean, runS: number): Promise<LoadFigures> {
  const server = await startGateway(path.join(bundles, 'gateway-accept.js'), {
    DATABASE_URL: `file:${databasePath}`,
    OPS_TOKENS: token,
    SEND_WAIT_MS: '0',
    DELIVERY_RETENTION_DAYS: '1',
    CONTENT_RETENTION_DAYS: '1',
    BENCH_PURGE_NOW: purge ? '1' : '0',
  });
  const logFile = fs.readdirSync(work).map((name) => path.join(work, name)).filter((file) => file.includes(`-${server.port}.log`))[0]!;
  const passReport = () => {
    const line = fs.readFileSync(logFile, 'utf8').split('\n').find((entry) => entry.includes('retention pass finished'));
    return line ? (JSON.parse(line) as LoadFigures['pass']) : undefined;
  };
  const deadline = performance.now() + (purge ? longestRunS : runS) * 1000;
  const done = () => performance.now() > deadline || (purge && passReport() !== undefined);
  const queryTimes: number[] = [];
  const queries = (async () => {
    while (!done()) {
      const started = performance.now();
      await postGraphql(server.port, deliveriesPage, { first: 20 });
      queryTimes.push(performance.now() - started);
    }
  })();
  const acceptLatencies: number[] = [];
  let accepted = 0;
  while (!done()) {
    const result = await autocannon({ connections: 10, duration: 2, overallRate: acceptRate, ...acceptRequests.graphql(server.port) });
    acceptLatencies.push(result.latency.p99);
    accepted += result['2xx'];
  }
  await queries;
  const pass = passReport();
  await server.stop();
  // autocannon's p99 per 2 s slice; the worst slice's is the run's p99 at most, the median slice's at least: report the
  // p99 over the slices (the 99th percentile of slice p99s is the worst one for fewer than 100 slices).
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
    '',
    '',
    '',
    undefined,
  );
}
