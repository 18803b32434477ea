import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { testSecretKey, testToken } from './gateway';
import type { TestDatabase } from './postgres';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface GatewayProcessOptions {
  /** Settings on top of the test defaults (port 0 on 127.0.0.1, the test token, a database in `dir`). */
  env?: Record<string, string>;
  /** Folder of the database (and secret key); a fresh temporary one when omitted. Reuse it to restart "the same" gateway. */
  dir?: string;
  readyTimeoutMs?: number;
  /** Run the bundle `npm start` runs (dist/main.js, built by the test setup, with npm start's node flags). */
  bundle?: boolean;
  /** A PostgreSQL database instead of the SQLite file (with the key every replica of it shares). */
  database?: TestDatabase;
}

/** node's flags in `npm start`, read from package.json so the tests run the gateway exactly so. */
function startFlags(): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const command = pkg.scripts.start.split('&&').at(-1)!.trim().split(/\s+/);
  return command.slice(1, -1);
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface GatewayProcess {
  /** http://127.0.0.1:<port> */
  url: string;
  pid: number;
  dir: string;
  databasePath: string;
  /** Every JSON log line the process wrote to stdout, parsed. */
  logs: Record<string, any>[];
  stderr(): string;
  exited: Promise<Exit>;
  /** POSTs a GraphQL operation with the test token over a real connection. */
  graphql<T = any>(
    query: string,
    variables?: Record<string, unknown>,
    options?: { token?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; body: { data?: T; errors?: { message: string; extensions?: Record<string, unknown> }[] } }>;
  /** A GET on the gateway over the keep-alive connections (legacy REST routes, /readyz): status and parsed JSON. */
  get(pathAndQuery: string, options?: { token?: string | null; headers?: Record<string, string> }): Promise<{ status: number; body: any }>;
  /** Sends a signal to the gateway process itself. */
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<Exit>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** One request on the gateway's kept-alive connections; the answer must be JSON. */
function requestJson(
  agent: http.Agent,
  method: string,
  url: string,
  { headers, body }: { headers: Record<string, string>; body?: string },
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, agent, headers }, (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        try {
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) });
        } catch (error) {
          reject(error);
        }
      });
      response.on('error', reject);
    });
    request.on('error', (error: NodeJS.ErrnoException) => {
      // A kept-alive connection the server closed as it was reused (its keep-alive timeout): once more on a new one,
      // as node's documentation advises.
      if (request.reusedSocket && error.code === 'ECONNRESET') requestJson(agent, method, url, { headers, body }).then(resolve, reject);
      else reject(error);
    });
    request.end(body);
  });
}

/** A keep-alive agent per gateway: bursts of requests reuse connections instead of opening thousands. */
function agentFor(): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: 64 });
}

/**
 * Starts the real gateway (`src/main.ts` through tsx) as a child process. It runs as one process
 * (`node --import tsx src/main.ts`, what `npx tsx src/main.ts` loads, without tsx's supervising parent) so that
 * SIGKILL hits the gateway itself, as `kill -9` of a production process would.
 */
export async function spawnGateway(options: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'notify-gateway-process-'));
  const databasePath = path.join(dir, 'notify.db');
  const args = options.bundle ? [...startFlags(), 'dist/main.js'] : ['--import', 'tsx', 'src/main.ts'];
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? os.homedir(),
      TMPDIR: os.tmpdir(),
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      DATABASE_URL: options.database ? options.database.url : `file:${databasePath}`,
      ...(options.database ? { NOTIFY_SECRET_KEY: testSecretKey } : {}),
      OPS_TOKENS: testToken,
      LOG_LEVEL: 'info',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const logs: Record<string, any>[] = [];
  let stderr = '';
  let pending = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        logs.push(JSON.parse(line));
      } catch {
        // A line cut by SIGKILL.
      }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // 'close', not 'exit': only then has all of its output been read.
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );

  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  let url: string | undefined;
  while (!url) {
    const line = logs.find((entry) => entry.msg === 'notify-gateway listening');
    if (line) url = String(line.url).replace(/\/graphql$/, '');
    else if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`gateway exited before listening:\n${stderr}\n${JSON.stringify(logs)}`);
    } else if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway did not listen in time:\n${stderr}`);
    } else await new Promise((resolve) => setTimeout(resolve, 25));
  }

  const agent = agentFor();
  void exited.then(() => agent.destroy());
  const base = url;
  return {
    url: base,
    pid: child.pid!,
    dir,
    databasePath,
    logs,
    stderr: () => stderr,
    exited,
    graphql(query, variables, { token = testToken, headers = {} } = {}) {
      const body = JSON.stringify({ query, variables });
      return requestJson(agent, 'POST', `${base}/graphql`, {
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'OPS-Token': token, ...headers },
        body,
      });
    },
    get(pathAndQuery, { token = testToken, headers = {} } = {}) {
      return requestJson(agent, 'GET', `${base}${pathAndQuery}`, { headers: { ...(token === null ? {} : { 'OPS-Token': token }), ...headers } });
    },
    kill(signal) {
      child.kill(signal);
    },
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}
