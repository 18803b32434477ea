import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/free-port';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// What `npm start` runs.
const tsx = path.join(root, 'node_modules', '.bin', 'tsx');
const startupTimeoutMs = 25_000;

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();

/** Starts the gateway as a user would, with only the settings the README names. */
function start(env: Record<string, string>): Started {
  const child = spawn(tsx, ['src/main.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.homedir(), TMPDIR: os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  // 'close', not 'exit': only then has all of its output been read.
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

async function listening(started: Started): Promise<void> {
  const deadline = Date.now() + startupTimeoutMs;
  while (!started.stdout().includes('notify-gateway listening')) {
    if (started.child.exitCode !== null) throw new Error(`gateway exited early:\n${started.stdout()}\n${started.stderr()}`);
    if (Date.now() > deadline) throw new Error(`gateway did not start:\n${started.stdout()}\n${started.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function stop(started: Started): Promise<number | null> {
  started.child.kill('SIGTERM');
  return started.exited;
}

const logLines = (output: string) =>
  output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { msg: string; level: number });

describe('npm start', { timeout: 60_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-gateway-main-'));
  const databasePath = path.join(dir, 'x.db');
  let badConfig: Started;
  // Started first so that its start-up overlaps the other tests.
  beforeAll(() => {
    badConfig = start({ PORT: 'eighty', DINGTALK_BASE_URL: 'ftp://example.com', DATABASE_URL: `file:${path.join(dir, 'never.db')}` });
  });
  afterAll(() => {
    for (const child of children) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  let token = '';

  it('migrates, prints a bootstrap token once, serves GraphQL on PORT and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const gateway = start({ PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: `file:${databasePath}` });
    await listening(gateway);

    const printed = /OPS-Token: (\S+)/.exec(gateway.stdout());
    expect(printed, gateway.stdout()).not.toBeNull();
    token = printed![1];

    const graphql = (query: string, headers: Record<string, string> = { 'OPS-Token': token }) =>
      fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query }),
      });
    const sent = await graphql(
      'mutation { sendSms(input: { mobile: "13800138000", content: "vc-739146-zq" }) { __typename ... on Delivery { id status recipient } } }',
    );
    expect(sent.status).toBe(200);
    const body = await sent.json();
    expect(body.data?.sendSms, JSON.stringify(body)).toMatchObject({ __typename: 'Delivery', status: 'SENT', recipient: '+8613800138000' });

    const refused = await graphql('{ deliveries { edges { node { id } } } }', {});
    expect(refused.status).toBe(401);
    expect((await refused.json()).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const page = await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/graphiql/i);

    // The committed migrations were applied to the file named by DATABASE_URL.
    const db = new Database(databasePath, { readonly: true });
    try {
      const tables = (db.prepare("select name from sqlite_master where type = 'table'").all() as { name: string }[]).map(
        (row) => row.name,
      );
      expect(tables).toEqual(expect.arrayContaining(['deliveries', 'delivery_attempts', 'api_tokens', '__drizzle_migrations']));
      const journal = JSON.parse(fs.readFileSync(path.join(root, 'drizzle/sqlite/meta/_journal.json'), 'utf8'));
      expect((db.prepare('select count(*) as n from __drizzle_migrations').get() as { n: number }).n).toBe(journal.entries.length);
      expect(db.prepare('select status from deliveries where id = ?').get(body.data.sendSms.id)).toEqual({ status: 'SENT' });
      expect(db.prepare('select count(*) as n from api_tokens').get()).toEqual({ n: 1 });
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }

    expect(await stop(gateway), gateway.stdout() + gateway.stderr()).toBe(0);
    const logs = logLines(gateway.stdout());
    expect(logs.at(-1)?.msg).toBe('stopped');
    expect(gateway.stdout()).not.toContain('vc-739146-zq');
    // The plain token is printed, never logged, and never stored.
    expect(logs.some((line) => JSON.stringify(line).includes(token))).toBe(false);
    for (const file of fs.readdirSync(dir)) {
      expect(fs.readFileSync(path.join(dir, file)).includes(Buffer.from(token)), file).toBe(false);
    }
  });

  it('prints no new token on a second start, and on SIGINT finishes the attempt under way before it exits', async () => {
    expect(token).not.toBe('');
    // A DingTalk endpoint that holds each request until the test lets it answer.
    const held: http.ServerResponse[] = [];
    const robot = http.createServer((request, response) => {
      request.resume();
      request.on('end', () => held.push(response));
    });
    await new Promise<void>((resolve) => robot.listen(0, '127.0.0.1', resolve));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const gateway = start({
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: `file:${databasePath}`,
      DINGTALK_BASE_URL: `http://127.0.0.1:${(robot.address() as net.AddressInfo).port}`,
    });
    try {
      await listening(gateway);
      expect(gateway.stdout()).not.toContain('OPS-Token:');

      const graphql = async (query: string) => {
        const response = await fetch(`${base}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'OPS-Token': token },
          body: JSON.stringify({ query }),
        });
        expect(response.status).toBe(200);
        return (await response.json()).data;
      };
      expect((await graphql('{ deliveries { edges { node { channel status } } } }')).deliveries.edges).toEqual([
        { node: { channel: 'SMS', status: 'SENT' } },
      ]);

      const { sendDing } = await graphql(
        'mutation { sendDing(input: { accessToken: "tok", secret: "SECx", content: "deploy", wait: false }) { ... on Delivery { id status } } }',
      );
      expect(sendDing.status).toBe('QUEUED');
      const deadline = Date.now() + 10_000;
      while (held.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(held).toHaveLength(1);

      gateway.child.kill('SIGINT');
      while (!gateway.stdout().includes('stopping') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(gateway.child.exitCode).toBeNull();
      held[0].writeHead(200, { 'content-type': 'application/json' }).end('{"errcode":0,"errmsg":"ok"}');

      expect(await gateway.exited, gateway.stdout() + gateway.stderr()).toBe(0);
      expect(logLines(gateway.stdout()).at(-1)?.msg).toBe('stopped');
      const db = new Database(databasePath, { readonly: true });
      try {
        expect(db.prepare('select status, attempts from deliveries where id = ?').get(sendDing.id)).toEqual({ status: 'SENT', attempts: 1 });
      } finally {
        db.close();
      }
    } finally {
      robot.closeAllConnections();
      robot.close();
    }
  });

  it('refuses to start with a bad configuration, naming every problem', async () => {
    expect(await badConfig.exited).toBe(1);
    expect(badConfig.stderr()).toMatch(/Invalid configuration/);
    expect(badConfig.stderr()).toContain('PORT');
    expect(badConfig.stderr()).toContain('DINGTALK_BASE_URL');
    expect(fs.existsSync(path.join(dir, 'never.db'))).toBe(false);
  });
});
