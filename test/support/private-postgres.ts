import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './free-port';
import type { TestDatabase } from './postgres';

const run = promisify(execFile);
const bin = '/usr/lib/postgresql/15/bin';

/** True when a private cluster can be made here: the binaries exist, and runuser can become `postgres`. */
export const privatePostgresPossible = (): boolean => fs.existsSync(path.join(bin, 'initdb')) && process.getuid?.() === 0;

export interface PrivatePostgres {
  database: TestDatabase;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A PostgreSQL 15 cluster of the test's own, in a temporary folder on a free port, for a test that stops the server:
 * the shared one serves other test files at the same time. PostgreSQL refuses to run as root, so as `postgres`.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-pg-'));
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  const data = path.join(dir, 'data');
  const asPostgres = (command: string, args: string[]) => run('runuser', ['-u', 'postgres', '--', path.join(bin, command), ...args]);
  const { uid, gid } = await lookupPostgres();
  fs.chownSync(dir, uid, gid);
  const pgCtl = (...args: string[]) =>
    asPostgres('pg_ctl', ['-D', data, '-l', path.join(dir, 'log'), '-w', '-t', '30', ...args]);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
  try {
    await asPostgres('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
    await pgCtl('-o', options, 'start');
    const url = `postgres://postgres@127.0.0.1:${port}/notify`;
    const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
    await admin.connect();
    await admin.query('create database notify');
    await admin.end();
    return {
      database: { url, name: 'notify', drop: async () => {} },
      stop: () => pgCtl('-m', 'fast', 'stop').then(() => undefined),
      start: () => pgCtl('-o', options, 'start').then(() => undefined),
      async close() {
        await pgCtl('-m', 'immediate', 'stop').catch(() => {});
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await pgCtl('-m', 'immediate', 'stop').catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

async function lookupPostgres(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
}
