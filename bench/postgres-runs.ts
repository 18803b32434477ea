// The PostgreSQL parts of `npm run bench` (BENCH_ONLY=pg-accept,pg-queries,pg-e2e, or `postgres` for all three):
// accepting against baselines on the same driver and pool, `deliveries` latency and query plans on a seeded database,
// and end to end through one and three replicas of dist/main.js. Each run has a database of its own, dropped after.
import crypto from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { createApp } from '../src/app';
import { closeChannels, createChannels } from '../src/channels';
import { loadConfig } from '../src/config';
import { connectionSettings } from '../src/db/postgres-client';
import { PostgresStore } from '../src/db/postgres-store';
import { createLogger } from '../src/logger';
import { loadSecretKey, SecretBox } from '../src/secrets';
import {
  acceptLoad,
  acceptRequests,
  bundles,
  countAt,
  cpuSecondsOf,
  deliveriesCases,
  deliveriesPage,
  emailCount,
  percentile,
  record,
  rowCount,
  sendAll,
  startGateway,
  startServer,
  timeQueries,
  token,
  waitForCount,
  work,
  type NodemailerAlone,
  type QueryCase,
} from './harness';
import { backendCpuBetween, createDatabase, postgresServerUrl, postgresUnreachable, type BenchDatabase } from './postgres';
import { seedPostgres } from './seed-postgres';

/** One key for every process of a run: PostgreSQL requires NOTIFY_SECRET_KEY (replicas must share it). */
const secretKey = crypto.randomBytes(32).toString('hex');
/** The gateway's default pool, given to its baselines too. */
const poolSize = '10';
/** Emails each replica sends before the measured end-to-end run (BENCH_WARMUP). */
const warmUpEmails = Number(process.env.BENCH_WARMUP ?? 3000);

async function withDatabase<T>(label: string, work: (database: BenchDatabase) => Promise<T>): Promise<T> {
  const database = await createDatabase(label);
  try {
    return await work(database);
  } finally {
    await database.drop();
  }
}

const gatewayEnv = (database: BenchDatabase, env: Record<string, string> = {}) => ({
  DATABASE_URL: database.url,
  DATABASE_POOL_SIZE: poolSize,
  NOTIFY_SECRET_KEY: secretKey,
  OPS_TOKENS: token,
  DATA_DIR: work,
  ...env,
});

async function countDeliveries(database: BenchDatabase): Promise<number> {
  const { rows } = await database.client.query<{ count: number }>('select count(*)::int as count from deliveries');
  return rows[0]!.count;
}

async function postgresAccept() {
  const measure = (script: string, request: keyof typeof acceptRequests) =>
    withDatabase('accept', async (database) => {
      const server = script.startsWith('baseline')
        ? await startServer(script, { DATABASE_URL: database.url, DATABASE_POOL_SIZE: poolSize, TOKEN: token })
        : await startGateway(path.join(bundles, `${script}.js`), gatewayEnv(database, { SEND_WAIT_MS: '0' }));
      const result = await acceptLoad(server, acceptRequests[request](server.port), async () => ({
        backends: await database.backendCpu(),
        stored: await countDeliveries(database),
      }));
      const stored = result.after.stored - result.before.stored;
      if (stored < result.answered) console.warn(`  ${script} (${request}): ${result.answered} answered but ${stored} rows stored`);
      const perRequest = (cpuSeconds: number) => ((cpuSeconds / result.answered) * 1000).toFixed(2);
      return { ...result, cpu: `${perRequest(result.cpuSeconds)} + ${perRequest(backendCpuBetween(result.before.backends, result.after.backends))}` };
    });

  const baseGraphql = await measure('baseline-graphql-postgres', 'graphql');
  const gatewayGraphql = await measure('gateway-accept', 'graphql');
  const baseRest = await measure('baseline-rest-postgres', 'rest');
  const gatewayRest = await measure('gateway-accept', 'rest');

  const line = (name: string, gateway: typeof baseRest, base: typeof baseRest, target: number) => {
    const ratio = gateway.rps / base.rps;
    record(
      `PostgreSQL: ${name} accept, req/s (p50 / p99 ms) [CPU ms per request: process + PostgreSQL]`,
      `${gateway.rps.toFixed(0)} (${gateway.p50} / ${gateway.p99}) [${gateway.cpu}]`,
      `${base.rps.toFixed(0)} (${base.p50} / ${base.p99}) [${base.cpu}]`,
      ratio.toFixed(2),
      `≥ ${target}`,
      ratio >= target,
    );
  };
  line('GraphQL sendEmail', gatewayGraphql, baseGraphql, 0.5);
  line('REST email route', gatewayRest, baseRest, 0.8);
}

interface Statement {
  text: string;
  values: unknown[];
}

/**
 * The statement the gateway runs for each case's first page, taken from the real app in this process (GraphQL request
 * in, the store's SQL and parameters out).
 */
async function firstPageStatements(database: BenchDatabase, cases: QueryCase[]): Promise<Statement[]> {
  const config = loadConfig({ ...gatewayEnv(database), NODE_ENV: 'production', DATABASE_POOL_SIZE: '1' });
  const logger = createLogger({ level: 'silent', pretty: false });
  const store = await PostgresStore.open({ url: database.url, poolSize: 1, logger });
  const channels = createChannels(config, logger);
  const app = createApp({ config, store, channels, secretBox: new SecretBox(loadSecretKey(config.secretKey, config.dataDir)), logger });
  const listed: Statement[] = [];
  const query = store.pool.query.bind(store.pool) as (config: pg.QueryConfig) => Promise<pg.QueryResult>;
  (store.pool as unknown as { query: typeof query }).query = (config) => {
    if (/from deliveries[\s\S]*order by created_at/.test(config.text)) listed.push({ text: config.text, values: config.values ?? [] });
    return query(config);
  };
  try {
    const statements: Statement[] = [];
    for (const [name, filter] of cases) {
      listed.length = 0;
      const response = await app.fetch(
        new Request('http://bench/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'ops-token': token },
          body: JSON.stringify({ query: deliveriesPage, variables: { first: 20, ...filter } }),
        }),
      );
      const body = (await response.json()) as { errors?: unknown };
      if (body.errors || listed.length !== 1) throw new Error(`${name}: ${listed.length} list statements, ${JSON.stringify(body).slice(0, 300)}`);
      statements.push(listed[0]!);
    }
    return statements;
  } finally {
    await closeChannels(channels);
    await store.close();
  }
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of a statement as the gateway runs it: unnamed, so planned for its values on every run,
 * on a session with the gateway's own connection settings (random_page_cost among them).
 */
async function explain(url: string, { text, values }: Statement): Promise<string> {
  const client = new pg.Client(connectionSettings({ url, applicationName: 'notify-bench explain' }));
  await client.connect();
  try {
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`explain (analyze, buffers) ${text}`, values);
    return rows.map((row) => row['QUERY PLAN']).join('\n');
  } finally {
    await client.end();
  }
}

/** The index a plan reads, and whether it reads the table whole or sorts (it should do neither). */
function planSummary(plan: string): { index?: string; clean: boolean } {
  return { index: /Index (?:Only )?Scan(?: Backward)? using (\S+)/.exec(plan)?.[1], clean: !/Seq Scan|\bSort\b/.test(plan) };
}

async function postgresQueries(): Promise<string> {
  return withDatabase('queries', async (database) => {
    const seedStarted = performance.now();
    await seedPostgres(database.client, rowCount, Math.floor(rowCount / 10));
    console.log(`seeded ${rowCount} deliveries in PostgreSQL in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);
    const { rows } = await database.client.query<{ createdAt: number; id: string }>(
      'select created_at::float8 as "createdAt", id from deliveries order by created_at desc, id desc limit 1 offset $1',
      [Math.floor(rowCount * 0.9)],
    );
    const cases = deliveriesCases(rows[0]!);

    const statements = await firstPageStatements(database, cases);
    const plans: string[] = [];
    const summaries: ReturnType<typeof planSummary>[] = [];
    for (const [index, [name, filter]] of cases.entries()) {
      const plan = await explain(database.url, statements[index]!);
      summaries.push(planSummary(plan));
      const { text, values } = statements[index]!;
      const statement = text.replace(/\s+/g, ' ').replace(/^select .*? from deliveries/, 'select <every column> from deliveries');
      const parameters = values.map((value, position) => `$${position + 1} = ${JSON.stringify(value)}`).join(', ');
      plans.push(`**${name}** (\`${JSON.stringify({ first: 20, ...filter })}\`)\n\n\`\`\`text\n${statement}\n-- ${parameters}\n\n${plan}\n\`\`\``);
      console.log(`  ${name}:\n${plan.replace(/^/gm, '    ')}`);
    }

    const server = await startGateway(path.join(bundles, 'gateway-accept.js'), gatewayEnv(database));
    const measured = await timeQueries(server.port, cases);
    await server.stop();
    for (const [index, { name, times }] of measured.entries()) {
      const p99 = percentile(times, 99);
      const { index: used, clean } = summaries[index]!;
      record(
        `PostgreSQL: deliveries(first: 20), ${name}, ${rowCount.toLocaleString('en')} rows: p50 / p99 ms (index)`,
        `${percentile(times, 50).toFixed(2)} / ${p99.toFixed(2)} (${used ?? 'none'}${clean ? '' : ', **with a Seq Scan or Sort**'})`,
        '',
        '',
        'p99 < 5 ms',
        p99 < 5 && clean,
      );
    }
    const header =
      `Measured ${new Date().toISOString().slice(0, 16)}Z on ${rowCount.toLocaleString('en')} seeded rows: the statement the ` +
      'gateway ran for each first page (taken from\nthe app), then its plan as the gateway gets it: planned for its values, on a session with the gateway\'s settings.';
    return [header, ...plans].join('\n\n');
  });
}

/**
 * The deliveries by status once none is waiting or under way (10 s at most): the SMTP peer counts a message a moment
 * before its attempt is recorded. Each SENT delivery should have one attempt (more would mean a duplicate send).
 */
async function settledOutcomes(database: BenchDatabase) {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const { rows } = await database.client.query<{ status: string; count: number; attempts: number }>(
      'select status, count(*)::int as count, sum(attempts)::int as attempts from deliveries group by status order by status',
    );
    if (rows.every(({ status }) => status === 'SENT' || status === 'FAILED') || performance.now() > deadline) return rows;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function replicasRun(replicas: number) {
  return withDatabase(`e2e${replicas}`, async (database) => {
    const sink = await startServer('smtp-raw', {}, true);
    const env = gatewayEnv(database, { SMTP_URL: `smtp://127.0.0.1:${sink.port}`, SMTP_POOL_SIZE: '5' });
    const gateways = [];
    for (let i = 0; i < replicas; i += 1) gateways.push(await startGateway('dist/main.js', env));
    // Each replica first sends warmUpEmails of its own and the run waits for them: a fresh process spends its first
    // thousands of requests compiling (V8), a cost three replicas pay three times and a long-running one not at all.
    for (const gateway of gateways) await sendAll([gateway.port], warmUpEmails);
    const warmedUp = await waitForCount(sink, warmUpEmails * replicas, 120_000);
    const started = performance.now();
    const clientCpu = process.cpuUsage();
    const gatewayCpuAtStart = gateways.map((gateway) => cpuSecondsOf(gateway.child.pid));
    const backendsAtStart = await database.backendCpu();
    const refused = await sendAll(gateways.map((gateway) => gateway.port), emailCount);
    const acceptedSeconds = (performance.now() - started) / 1000;
    const receivedWhenAccepted = (await countAt(sink)) - warmedUp;
    const received = (await waitForCount(sink, warmedUp + emailCount, 300_000)) - warmedUp;
    const elapsed = (performance.now() - started) / 1000;
    const clientCpuUsed = process.cpuUsage(clientCpu);
    const cpu = {
      gateways: gateways.map((gateway, index) => (cpuSecondsOf(gateway.child.pid) - gatewayCpuAtStart[index]!).toFixed(1)).join(' + '),
      postgres: backendCpuBetween(backendsAtStart, await database.backendCpu()).toFixed(1),
      sink: cpuSecondsOf(sink.child.pid).toFixed(1),
      client: ((clientCpuUsed.user + clientCpuUsed.system) / 1e6).toFixed(1),
    };
    const rss = gateways.map((gateway) => gateway.peakRssMb());
    const outcomes = await settledOutcomes(database);
    await Promise.all(gateways.map((gateway) => gateway.stop()));
    await sink.stop();
    if (refused > 0 || received < emailCount) console.warn(`  ${replicas} replicas: ${refused} refused, ${received}/${emailCount} received`);
    const stored = outcomes.map(({ status, count, attempts }) => `${count} ${status} (${attempts} attempts)`).join(', ');
    if (outcomes.some(({ status, count, attempts }) => status !== 'SENT' || attempts !== count)) console.warn(`  ${replicas} replicas: not one attempt each: ${stored}`);
    console.log(
      `  ${replicas} ${replicas === 1 ? 'replica' : 'replicas'}: CPU seconds: gateway ${cpu.gateways}, PostgreSQL ${cpu.postgres}, ` +
        `SMTP peer ${cpu.sink}, API client ${cpu.client}; ` +
        `peak RSS ${rss.map((mb) => mb.toFixed(0)).join(' / ')} MB; stored: ${stored}`,
    );
    const rate = received / elapsed;
    return {
      rate,
      summary:
        `${rate.toFixed(0)} (all accepted in ${acceptedSeconds.toFixed(1)} s, ${receivedWhenAccepted} delivered by then; all delivered in ` +
        `${elapsed.toFixed(1)} s; CPU s: gateway ${cpu.gateways}, PostgreSQL ${cpu.postgres})`,
    };
  });
}

async function postgresEndToEnd(alone: NodemailerAlone) {
  const one = await replicasRun(1);
  const three = await replicasRun(3);
  record(
    `PostgreSQL: ${emailCount} emails end to end, one replica, mails/s`,
    one.summary,
    `${alone.rate.toFixed(0)} (nodemailer alone)`,
    (one.rate / alone.rate).toFixed(2),
    '',
    undefined,
  );
  record(
    `PostgreSQL: ${emailCount} emails end to end, three replicas on one database (same 2 cores), mails/s`,
    three.summary,
    `${one.rate.toFixed(0)} (one replica)`,
    (three.rate / one.rate).toFixed(2),
    '',
    undefined,
  );
}

/**
 * Runs the PostgreSQL parts `runs` selects, or says in one line why they are skipped. Returns the query plans (for
 * BENCHMARKS.md) when the query part ran.
 */
export async function postgresParts(runs: (part: string) => boolean, nodemailerRun: () => Promise<NodemailerAlone>): Promise<string | undefined> {
  const parts = ['pg-accept', 'pg-queries', 'pg-e2e'].filter(runs);
  if (parts.length === 0) return undefined;
  const unreachable = await postgresUnreachable();
  if (unreachable) {
    console.log(`PostgreSQL parts skipped (${parts.join(', ')}): ${postgresServerUrl} does not answer (${unreachable}); set BENCH_POSTGRES_URL`);
    return undefined;
  }
  if (runs('pg-accept')) await postgresAccept();
  const plans = runs('pg-queries') ? await postgresQueries() : undefined;
  if (runs('pg-e2e')) await postgresEndToEnd(await nodemailerRun());
  return plans;
}
