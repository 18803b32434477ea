// `npm run bench`: the gateway beside its baselines, in one run on one machine. Prints a Markdown table; with
// `--write` it also replaces the table in BENCHMARKS.md. BENCH_SECONDS (default 10) sets each load run's length,
// BENCH_EMAILS (default 10000) the end-to-end count, BENCH_ROWS (default 1000000) the query database size.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { openDatabase } from '../src/db/sqlite-client';
import { postGraphqlRaw } from './graphql-post';
import { seedDeliveries } from './seed';
import { freePort } from '../test/support/free-port';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const emailCount = Number(process.env.BENCH_EMAILS ?? 10_000);
const rowCount = Number(process.env.BENCH_ROWS ?? 1_000_000);
const token = 'bench-token-0123456789';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-bench-'));

interface Running {
  child: ChildProcess;
  port: number;
  peakRssMb: () => number;
  stop: () => Promise<void>;
}

// Every measured process runs plain node on an esbuild bundle, as `npm start` runs the gateway: no tsx loader in
// any of them (it costs memory and start time, and the baselines must not carry it either).
const bundles = path.join(root, 'dist/bench');

function bundleServers() {
  const entries = fs.readdirSync(path.join(root, 'bench/servers')).map((file) => path.join('bench/servers', file));
  execFileSync(
    path.join(root, 'node_modules/.bin/esbuild'),
    [...entries, '--bundle', '--platform=node', '--format=esm', '--target=node20', '--packages=external', `--outdir=${bundles}`, '--log-level=warning'],
    { cwd: root, stdio: 'inherit' },
  );
}

function peakRssOf(pid: number | undefined): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 10 ms). */
function cpuSecondsOf(pid: number | undefined): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

function stopper(child: ChildProcess) {
  return () =>
    new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once('exit', () => done());
      child.kill('SIGTERM');
    });
}

/** A bench server (baseline, SMTP peer): it prints `ready <port>` and nothing else. */
function startServer(name: string, env: Record<string, string>, ipc = false): Promise<Running> {
  const child = spawn(process.execPath, [path.join(bundles, `${name}.js`)], {
    cwd: root,
    env: { ...process.env, NODE_ENV: 'production', ...env },
    stdio: ipc ? ['ignore', 'pipe', 'inherit', 'ipc'] : ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const ready = /ready (\d+)/.exec(output);
      if (ready) {
        child.stdout!.removeAllListeners('data');
        child.stdout!.resume();
        resolve({ child, port: Number(ready[1]), peakRssMb: () => peakRssOf(child.pid), stop: stopper(child) });
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it was ready: ${output}`)));
  });
}

/** The node flags `npm start` gives the gateway (package.json), so that every gateway here runs with them too. */
const startScript = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
const startFlags = /\bnode ((?:--\S+ )*)dist\/main\.js/.exec(startScript)![1]!.trim().split(' ').filter(Boolean);

/**
 * The gateway (dist/main.js, or the accept-only server): production settings, logs at the default level (info) to a
 * file as a deployment would keep them, listening on a port chosen here; ready once /healthz answers.
 */
async function startGateway(script: string, env: Record<string, string>): Promise<Running & { started: number }> {
  const port = await freePort();
  const logFile = path.join(work, `${path.basename(script, '.js')}-${port}.log`);
  const log = fs.openSync(logFile, 'w');
  const started = performance.now();
  // BENCH_PROF=<dir> writes a CPU profile of each gateway run there (node --cpu-prof), for finding overheads.
  const profile = process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [];
  const child = spawn(process.execPath, [...profile, ...startFlags, script], {
    cwd: root,
    env: { ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', log, 'inherit'],
  });
  fs.closeSync(log);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${script} exited with ${child.exitCode}: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
    const response = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
    if (response) {
      await response.arrayBuffer();
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return { child, port, started, peakRssMb: () => peakRssOf(child.pid), stop: stopper(child) };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
async function postGraphql(port: number, query: string, variables: Record<string, unknown>): Promise<{ data?: any; errors?: unknown[] }> {
  return JSON.parse(await postGraphqlRaw(agent, port, token, JSON.stringify({ query, variables })));
}

function freshDatabase(name: string): string {
  const file = path.join(work, `${name}.db`);
  openDatabase(file).$client.close();
  return file;
}

const rows: string[][] = [];
function record(measure: string, gateway: string, baseline: string, ratio: string, target: string, ok: boolean | undefined) {
  rows.push([measure, gateway, baseline, ratio, target, ok === undefined ? '' : ok ? 'yes' : '**no**']);
  console.log(`${measure}: ${gateway} | ${baseline} | ${ratio} | ${target}`);
}

async function load(url: string, options: { method?: string; headers?: Record<string, string>; body?: string }) {
  await autocannon({ url, connections: 10, duration: Math.min(2, seconds), ...options });
  return autocannon({ url, connections: 10, duration: seconds, ...options });
}

const graphqlBody = JSON.stringify({
  query:
    'mutation Send($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { id status recipient createdAt } } }',
  variables: { input: { to: ['ops@example.com'], subject: 'disk', content: '/var is at 97% on db-1', wait: false } },
});
const restPath = `/api/third/email/sendMsg?email=ops%40example.com&content=${encodeURIComponent('/var is at 97% on db-1')}`;

async function acceptThroughput() {
  const gatewayEnv = (name: string) => ({
    DATABASE_URL: `file:${freshDatabase(name)}`,
    OPS_TOKENS: token,
    SEND_WAIT_MS: '0',
  });
  const measure = async (script: string, env: Record<string, string>, request: (port: number) => Promise<Awaited<ReturnType<typeof load>>>) => {
    const server = script.startsWith('baseline') ? await startServer(script, env) : await startGateway(path.join(bundles, `${script}.js`), env);
    const result = await request(server.port);
    const rss = server.peakRssMb();
    await server.stop();
    if (result.non2xx > 0 || result.errors > 0) console.warn(`  ${script}: ${result.non2xx} non-2xx, ${result.errors} errors`);
    return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, rss };
  };
  const graphql = (port: number) =>
    load(`http://127.0.0.1:${port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ops-token': token },
      body: graphqlBody,
    });
  const rest = (port: number) => load(`http://127.0.0.1:${port}${restPath}`, { headers: { 'ops-token': token } });

  const baseGraphql = await measure('baseline-graphql', { DB_PATH: freshDatabase('bg'), TOKEN: token }, graphql);
  const gatewayGraphql = await measure('gateway-accept', gatewayEnv('gg'), graphql);
  const baseRest = await measure('baseline-rest', { DB_PATH: freshDatabase('br'), TOKEN: token }, rest);
  const gatewayRest = await measure('gateway-accept', gatewayEnv('gr'), rest);

  const line = (name: string, gateway: typeof baseRest, base: typeof baseRest, target: number) => {
    const ratio = gateway.rps / base.rps;
    record(
      `${name} accept, req/s (p50 / p99 ms)`,
      `${gateway.rps.toFixed(0)} (${gateway.p50} / ${gateway.p99})`,
      `${base.rps.toFixed(0)} (${base.p50} / ${base.p99})`,
      ratio.toFixed(2),
      `≥ ${target}`,
      ratio >= target,
    );
  };
  line('GraphQL sendEmail', gatewayGraphql, baseGraphql, 0.5);
  line('REST email route', gatewayRest, baseRest, 0.8);
  return Math.max(gatewayGraphql.rss, gatewayRest.rss);
}

async function countAt(sink: Running): Promise<number> {
  return new Promise((resolve) => {
    sink.child.once('message', (message: { received: number }) => resolve(message.received));
    sink.child.send('count');
  });
}

async function waitForCount(sink: Running, target: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const received = await countAt(sink);
    if (received >= target || performance.now() > deadline) return received;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function sendAll(port: number, count: number, concurrency = 20) {
  let next = 0;
  let refused = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const index = next++;
        const body = await postGraphql(port, 'mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename } }', {
          input: { to: [`ops${index % 100}@example.com`], subject: `bench ${index}`, content: `message ${index}: disk /var is at 97%`, wait: false },
        });
        if (body.data?.sendEmail.__typename !== 'Delivery') refused += 1;
      }
    }),
  );
  return refused;
}

async function endToEndEmail() {
  const sinkAlone = await startServer('smtp-counter', {}, true);
  const alone = await new Promise<{ seconds: number; cpuSeconds: number; rss: number }>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(bundles, 'nodemailer-alone.js')], {
      cwd: root,
      env: { ...process.env, SMTP_PORT: String(sinkAlone.port), COUNT: String(emailCount), POOL: '5' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    let rss = 0;
    const timer = setInterval(() => {
      try {
        rss = Math.max(rss, Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);
      } catch {}
    }, 50);
    child.stdout!.on('data', (chunk) => (output += chunk));
    child.once('exit', (code) => {
      clearInterval(timer);
      if (code !== 0) reject(new Error(`nodemailer-alone exited ${code}`));
      else resolve({ ...JSON.parse(output), rss });
    });
  });
  const sinkAloneCpu = cpuSecondsOf(sinkAlone.child.pid);
  await sinkAlone.stop();

  const sink = await startServer('smtp-counter', {}, true);
  const gateway = await startGateway('dist/main.js', {
    DATABASE_URL: `file:${freshDatabase('e2e')}`,
    OPS_TOKENS: token,
    SMTP_URL: `smtp://127.0.0.1:${sink.port}`,
    SMTP_POOL_SIZE: '5',
  });
  const started = performance.now();
  const clientCpu = process.cpuUsage();
  const gatewayCpuAtStart = cpuSecondsOf(gateway.child.pid);
  const refused = await sendAll(gateway.port, emailCount);
  const acceptedSeconds = (performance.now() - started) / 1000;
  const receivedWhenAccepted = await countAt(sink);
  const received = await waitForCount(sink, emailCount, 300_000);
  const gatewaySeconds = (performance.now() - started) / 1000;
  const rss = gateway.peakRssMb();
  const clientCpuUsed = process.cpuUsage(clientCpu);
  const cpu = {
    gateway: cpuSecondsOf(gateway.child.pid) - gatewayCpuAtStart,
    sink: cpuSecondsOf(sink.child.pid),
    client: (clientCpuUsed.user + clientCpuUsed.system) / 1e6,
  };
  await gateway.stop();
  await sink.stop();
  if (refused > 0 || received < emailCount) console.warn(`  end-to-end: ${refused} refused, ${received}/${emailCount} received`);

  const gatewayRate = received / gatewaySeconds;
  const aloneRate = emailCount / alone.seconds;
  record(
    `${emailCount} emails end to end, mails/s`,
    `${gatewayRate.toFixed(0)} (all accepted in ${acceptedSeconds.toFixed(1)} s, ${receivedWhenAccepted} of them delivered by then; all delivered in ${gatewaySeconds.toFixed(1)} s)`,
    `${aloneRate.toFixed(0)} (nodemailer alone, ${alone.seconds.toFixed(1)} s)`,
    (gatewayRate / aloneRate).toFixed(2),
    '≥ 0.8',
    gatewayRate / aloneRate >= 0.8,
  );
  console.log(`  CPU per email: gateway ${((cpu.gateway / emailCount) * 1000).toFixed(2)} ms, nodemailer alone ${((alone.cpuSeconds / emailCount) * 1000).toFixed(2)} ms`);
  console.log(
    `  CPU seconds: gateway ${cpu.gateway.toFixed(1)}, SMTP peer ${cpu.sink.toFixed(1)}, API client ${cpu.client.toFixed(1)}; ` +
      `nodemailer alone ${alone.cpuSeconds.toFixed(1)}, its SMTP peer ${sinkAloneCpu.toFixed(1)}`,
  );
  console.log(`  end-to-end peak RSS ${rss.toFixed(0)} MB (nodemailer alone ${alone.rss.toFixed(0)} MB)`);
  return { rss, aloneRss: alone.rss, aloneRate };
}

function percentile(values: number[], p: number) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function deliveriesQueries(databasePath: string) {
  const server = await startGateway(path.join(bundles, 'gateway-accept.js'), { DATABASE_URL: `file:${databasePath}`, OPS_TOKENS: token });

  const page = `query($first: Int, $after: String, $channel: Channel, $status: DeliveryStatus, $recipient: String,
      $createdAfter: DateTime, $createdBefore: DateTime) {
    deliveries(first: $first, after: $after, channel: $channel, status: $status, recipient: $recipient,
      createdAfter: $createdAfter, createdBefore: $createdBefore) {
      edges { cursor node { id channel status recipient attempts createdAt sentAt lastError { code message } } }
      pageInfo { hasNextPage endCursor }
    } }`;
  const day = 24 * 3600 * 1000;
  // A cursor 90% of the way down the list.
  const deepCursor = Buffer.from(
    (() => {
      const db = openDatabase(databasePath).$client;
      const row = db
        .prepare('select created_at as createdAt, id from deliveries order by created_at desc, id desc limit 1 offset ?')
        .get(Math.floor(rowCount * 0.9)) as { createdAt: number; id: string };
      db.close();
      return `${row.createdAt}:${row.id}`;
    })(),
  ).toString('base64url');
  const cases: [string, Record<string, unknown>][] = [
    ['no filter', {}],
    ['channel', { channel: 'EMAIL' }],
    ['status', { status: 'FAILED' }],
    ['recipient', { recipient: 'user42@example.com' }],
    ['createdAfter', { createdAfter: new Date(Date.now() - 2 * day).toISOString() }],
    ['createdBefore', { createdBefore: new Date(Date.now() - 20 * day).toISOString() }],
    ['deep page by cursor', { after: deepCursor }],
  ];
  const measure = (port: number, measuredCases: typeof cases) =>
    new Promise<{ name: string; times: number[] }[]>((resolve, reject) => {
      const client = spawn(process.execPath, [path.join(bundles, 'query-client.js')], {
        cwd: root,
        env: {
          ...process.env,
          PORT: String(port),
          TOKEN: token,
          QUERY: page,
          CASES: JSON.stringify(measuredCases.map(([name, filter]) => ({ name, variables: { first: 20, ...filter } }))),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let output = '';
      client.stdout!.on('data', (chunk) => (output += chunk));
      client.once('exit', (code) => (code === 0 ? resolve(JSON.parse(output)) : reject(new Error(`query-client exited ${code}`))));
    });
  const measured = await measure(server.port, cases);
  const firstPage = JSON.stringify(await postGraphql(server.port, page, { first: 20 }));
  await server.stop();
  const floor = await startServer('static-answer', { BODY: firstPage });
  const [floorTimes] = await measure(floor.port, [cases[0]!]);
  await floor.stop();
  for (const { name, times } of measured) {
    const p99 = percentile(times, 99);
    record(
      `deliveries(first: 20), ${name}, ${rowCount.toLocaleString('en')} rows: p50 / p99 ms`,
      `${percentile(times, 50).toFixed(2)} / ${p99.toFixed(2)}`,
      '',
      '',
      'p99 < 5 ms',
      p99 < 5,
    );
  }
  record(
    'the machine\'s floor: bare node:http answering the same first page from memory, p50 / p99 ms',
    `${percentile(floorTimes!.times, 50).toFixed(2)} / ${percentile(floorTimes!.times, 99).toFixed(2)}`,
    '',
    '',
    '',
    undefined,
  );
}

async function startToReady(databasePath: string, aloneRate: number) {
  const sink = await startServer('smtp-counter', {}, true);
  const gateway = await startGateway('dist/main.js', {
    DATABASE_URL: `file:${databasePath}`,
    OPS_TOKENS: token,
    SMTP_URL: `smtp://127.0.0.1:${sink.port}`,
  });
  for (;;) {
    const response = await fetch(`http://127.0.0.1:${gateway.port}/readyz`).catch(() => undefined);
    if (response?.status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const readySeconds = (performance.now() - gateway.started) / 1000;
  const before = await countAt(sink);
  const cpuBefore = cpuSecondsOf(gateway.child.pid);
  const window = 5;
  await new Promise((resolve) => setTimeout(resolve, window * 1000));
  const drained = (await countAt(sink)) - before;
  console.log(`  drain: gateway CPU ${(((cpuSecondsOf(gateway.child.pid) - cpuBefore) / drained) * 1000).toFixed(2)} ms per email`);
  await gateway.stop();
  await sink.stop();
  record(
    `start to ready, ${rowCount.toLocaleString('en')} rows, 10% pending`,
    `${readySeconds.toFixed(2)} s`,
    '',
    '',
    '< 2 s',
    readySeconds < 2,
  );
  record(
    'backlog drain rate after start, emails/s',
    `${(drained / window).toFixed(0)} (the backlog is all emails)`,
    `${aloneRate.toFixed(0)} (nodemailer alone)`,
    (drained / window / aloneRate).toFixed(2),
    'provider pace',
    undefined,
  );
}

// The gateway runs as `npm start` runs it: the esbuild bundle.
execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
bundleServers();
// BENCH_ONLY=accept,e2e,queries,start runs some parts only (while iterating; the table is then partial).
const only = process.env.BENCH_ONLY?.split(',');
const runs = (part: string) => !only || only.includes(part);
const rssAccept = runs('accept') ? await acceptThroughput() : undefined;
const e2e = runs('e2e') || runs('start') ? await endToEndEmail() : undefined;
if (rssAccept !== undefined && e2e) {
  record('peak resident memory, accept runs / end-to-end run, MB', `${rssAccept.toFixed(0)} / ${e2e.rss.toFixed(0)}`, `nodemailer alone ${e2e.aloneRss.toFixed(0)}`, '', '< 200 MB', Math.max(rssAccept, e2e.rss) < 200);
}
if (runs('queries') || runs('start')) {
  const seeded = freshDatabase('seeded');
  const seedStarted = performance.now();
  seedDeliveries(seeded, rowCount, Math.floor(rowCount / 10));
  console.log(`seeded ${rowCount} deliveries in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);
  if (runs('queries')) await deliveriesQueries(seeded);
  if (runs('start')) await startToReady(seeded, e2e!.aloneRate);
}

const table = [
  '| measure | gateway | baseline | ratio | target | met |',
  '|---|---|---|---|---|---|',
  ...rows.map((row) => `| ${row.join(' | ')} |`),
].join('\n');
const header = `Measured ${new Date().toISOString().slice(0, 16)}Z on ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Node ${process.version}, ${seconds} s per load run.`;
console.log(`\n${header}\n\n${table}\n`);
if (process.argv.includes('--write')) {
  const file = path.join(root, 'BENCHMARKS.md');
  const text = fs.readFileSync(file, 'utf8');
  const updated = text.replace(/<!-- table -->[\s\S]*<!-- \/table -->/, `<!-- table -->\n${header}\n\n${table}\n<!-- /table -->`);
  fs.writeFileSync(file, updated);
}
fs.rmSync(work, { recursive: true, force: true });
process.exit(0);
