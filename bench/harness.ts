// What every part of `npm run bench` shares: its settings, starting and measuring the processes, the API clients and
// the table's rows.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { postGraphqlRaw } from './graphql-post';
import { freePort } from '../test/support/free-port';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const seconds = Number(process.env.BENCH_SECONDS ?? 10);
export const emailCount = Number(process.env.BENCH_EMAILS ?? 10_000);
export const rowCount = Number(process.env.BENCH_ROWS ?? 1_000_000);
export const token = 'bench-token-0123456789';
export const work = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-bench-'));

export interface Running {
  child: ChildProcess;
  port: number;
  peakRssMb: () => number;
  stop: () => Promise<void>;
}

// Every measured process runs plain node on an esbuild bundle, as `npm start` runs the gateway: no tsx loader in
// any of them (it costs memory and start time, and the baselines must not carry it either).
export const bundles = path.join(root, 'dist/bench');

export function bundleServers() {
  const entries = fs.readdirSync(path.join(root, 'bench/servers')).map((file) => path.join('bench/servers', file));
  // The retention pass's thread, beside the servers as it is beside dist/main.js.
  entries.push('src/db/sqlite-maintenance-worker.ts');
  execFileSync(
    path.join(root, 'node_modules/.bin/esbuild'),
    [...entries, '--bundle', '--platform=node', '--format=esm', '--target=node20', '--packages=external', `--outdir=${bundles}`, '--entry-names=[name]', '--log-level=warning'],
    { cwd: root, stdio: 'inherit' },
  );
}

export function peakRssOf(pid: number | undefined): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 10 ms). */
export function cpuSecondsOf(pid: number | undefined): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

// A run that fails half-way must not leave its servers behind.
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function watched(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function stopper(child: ChildProcess) {
  return () =>
    new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once('exit', () => done());
      child.kill('SIGTERM');
    });
}

const profileFlags = () => ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`];

/** A bench server (baseline, SMTP peer): it prints `ready <port>` and nothing else. */
export function startServer(name: string, env: Record<string, string>, ipc = false): Promise<Running> {
  // BENCH_PROF profiles the baselines too (not the SMTP peer or the static floor), to compare where the time goes.
  const profile = process.env.BENCH_PROF && name.startsWith('baseline') ? profileFlags() : [];
  const child = watched(
    spawn(process.execPath, [...profile, path.join(bundles, `${name}.js`)], {
      cwd: root,
      env: { ...process.env, NODE_ENV: 'production', ...env },
      stdio: ipc ? ['ignore', 'pipe', 'inherit', 'ipc'] : ['ignore', 'pipe', 'inherit'],
    }),
  );
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
export async function startGateway(script: string, env: Record<string, string>): Promise<Running & { started: number }> {
  const port = await freePort();
  const logFile = path.join(work, `${path.basename(script, '.js')}-${port}.log`);
  const log = fs.openSync(logFile, 'w');
  const started = performance.now();
  // BENCH_PROF=<dir> writes a CPU profile of each gateway run there (node --cpu-prof), for finding overheads.
  const profile = process.env.BENCH_PROF ? profileFlags() : [];
  const child = watched(
    spawn(process.execPath, [...profile, ...startFlags, script], {
      cwd: root,
      env: { ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: String(port), ...env },
      stdio: ['ignore', log, 'inherit'],
    }),
  );
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
export async function postGraphql(port: number, query: string, variables: Record<string, unknown>): Promise<{ data?: any; errors?: unknown[] }> {
  return JSON.parse(await postGraphqlRaw(agent, port, token, JSON.stringify({ query, variables })));
}

export const rows: string[][] = [];
export function record(measure: string, gateway: string, baseline: string, ratio: string, target: string, ok: boolean | undefined) {
  rows.push([measure, gateway, baseline, ratio, target, ok === undefined ? '' : ok ? 'yes' : '**no**']);
  console.log(`${measure}: ${gateway} | ${baseline} | ${ratio} | ${target}`);
}

export const acceptRequests = {
  graphql: (port: number) => ({
    url: `http://127.0.0.1:${port}/graphql`,
    method: 'POST',
    headers: { 'content-type': 'application/json', 'ops-token': token },
    body: JSON.stringify({
      query:
        'mutation Send($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { id status recipient createdAt } } }',
      variables: { input: { to: ['ops@example.com'], subject: 'disk', content: '/var is at 97% on db-1', wait: false } },
    }),
  }),
  rest: (port: number) => ({
    url: `http://127.0.0.1:${port}/api/third/email/sendMsg?email=ops%40example.com&content=${encodeURIComponent('/var is at 97% on db-1')}`,
    headers: { 'ops-token': token },
  }),
};

export interface AcceptResult<T> {
  rps: number;
  p50: number;
  p99: number;
  rss: number;
  /** Answered with 2xx in the measured run. */
  answered: number;
  /** The server process's CPU seconds in the measured run. */
  cpuSeconds: number;
  /** What `probe` read before and after the measured run. */
  before: T;
  after: T;
}

/**
 * autocannon, 10 connections, against a running server: 2 s of warm-up, then BENCH_SECONDS measured, as fast as the
 * server answers (or at `rate` requests/s over all connections, to compare latencies at the same load). `probe` is
 * read just before and just after the measured run (the database server's CPU, say). Stops the server.
 */
export async function acceptLoad<T = undefined>(
  server: Running,
  request: ReturnType<(typeof acceptRequests)[keyof typeof acceptRequests]>,
  probe: () => Promise<T> | T = () => undefined as T,
  rate?: number,
): Promise<AcceptResult<T>> {
  const paced = rate ? { overallRate: rate } : {};
  await autocannon({ connections: 10, duration: Math.min(2, seconds), ...paced, ...request });
  const cpuBefore = cpuSecondsOf(server.child.pid);
  const before = await probe();
  const result = await autocannon({ connections: 10, duration: seconds, ...paced, ...request });
  const cpuSeconds = cpuSecondsOf(server.child.pid) - cpuBefore;
  const after = await probe();
  const rss = server.peakRssMb();
  await server.stop();
  if (result.non2xx > 0 || result.errors > 0) console.warn(`  ${request.url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, rss, answered: result['2xx'], cpuSeconds, before, after };
}

/** Server CPU milliseconds per answered request in a load run. */
export const cpuMsPerRequest = (result: { cpuSeconds: number; answered: number }) => (result.cpuSeconds / result.answered) * 1000;

export async function countAt(sink: Running): Promise<number> {
  return new Promise((resolve) => {
    sink.child.once('message', (message: { received: number }) => resolve(message.received));
    sink.child.send('count');
  });
}

export async function waitForCount(sink: Running, target: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const received = await countAt(sink);
    if (received >= target || performance.now() > deadline) return received;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** `count` emails over GraphQL (wait: false) from `concurrency` clients; client k talks to ports[k % ports.length]. */
export async function sendAll(ports: number[], count: number, concurrency = 20) {
  let next = 0;
  let refused = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, client) => {
      const port = ports[client % ports.length]!;
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

export interface NodemailerAlone {
  seconds: number;
  cpuSeconds: number;
  rss: number;
  sinkCpuSeconds: number;
  rate: number;
}

/** nodemailer alone sending the same BENCH_EMAILS mails with the same pool (5) to an SMTP peer of its own. */
export async function nodemailerAlone(): Promise<NodemailerAlone> {
  const sink = await startServer('smtp-raw', {}, true);
  const alone = await new Promise<{ seconds: number; cpuSeconds: number; rss: number }>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(bundles, 'nodemailer-alone.js')], {
      cwd: root,
      env: { ...process.env, SMTP_PORT: String(sink.port), COUNT: String(emailCount), POOL: '5' },
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
  const sinkCpuSeconds = cpuSecondsOf(sink.child.pid);
  await sink.stop();
  return { ...alone, sinkCpuSeconds, rate: emailCount / alone.seconds };
}

export function percentile(values: number[], p: number) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export const deliveriesPage = `query($first: Int, $after: String, $channel: Channel, $status: DeliveryStatus, $recipient: String,
    $createdAfter: DateTime, $createdBefore: DateTime) {
  deliveries(first: $first, after: $after, channel: $channel, status: $status, recipient: $recipient,
    createdAfter: $createdAfter, createdBefore: $createdBefore) {
    edges { cursor node { id channel status recipient attempts createdAt sentAt lastError { code message } } }
    pageInfo { hasNextPage endCursor }
  } }`;

export type QueryCase = [name: string, filter: Record<string, unknown>];

/** The `deliveries` cases measured on every store, over a seeded database (bench/seed.ts's shape). */
export function deliveriesCases(deepCursor: { createdAt: number; id: string }): QueryCase[] {
  const day = 24 * 3600 * 1000;
  return [
    ['no filter', {}],
    ['channel', { channel: 'EMAIL' }],
    ['status', { status: 'FAILED' }],
    ['recipient', { recipient: 'user42@example.com' }],
    ['createdAfter', { createdAfter: new Date(Date.now() - 2 * day).toISOString() }],
    ['createdBefore', { createdBefore: new Date(Date.now() - 20 * day).toISOString() }],
    // A cursor 90% of the way down the list.
    ['deep page by cursor', { after: Buffer.from(`${deepCursor.createdAt}:${deepCursor.id}`).toString('base64url') }],
  ];
}

/** Times each case's first page (`first: 20`) through the API, from bench/servers/query-client.ts. */
export function timeQueries(port: number, cases: QueryCase[]) {
  return new Promise<{ name: string; times: number[] }[]>((resolve, reject) => {
    const client = spawn(process.execPath, [path.join(bundles, 'query-client.js')], {
      cwd: root,
      env: {
        ...process.env,
        PORT: String(port),
        TOKEN: token,
        QUERY: deliveriesPage,
        CASES: JSON.stringify(cases.map(([name, filter]) => ({ name, variables: { first: 20, ...filter } }))),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    client.stdout!.on('data', (chunk) => (output += chunk));
    client.once('exit', (code) => (code === 0 ? resolve(JSON.parse(output)) : reject(new Error(`query-client exited ${code}`))));
  });
}
