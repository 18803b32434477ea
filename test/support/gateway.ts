import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { expect } from 'vitest';
import { createApp, type App } from '../../src/app';
import type { Channels } from '../../src/channels/channel';
import { closeChannels, createChannels, readyChannels } from '../../src/channels';
import { loadConfig, type Config } from '../../src/config';
import { openStore } from '../../src/db';
import type { PostgresStore } from '../../src/db/postgres-store';
import { SqliteStore } from '../../src/db/sqlite-store';
import type { Store } from '../../src/db/store';
import { createLogger, type Logger } from '../../src/logger';
import { loadSecretKey, SecretBox } from '../../src/secrets';
import { createTestDatabase, type TestDatabase } from './postgres';

export const testToken = 'test-token-0123456789';

export interface TestGateway<S extends Store = SqliteStore> {
  app: App;
  store: S;
  config: Config;
  /** The SQLite file (SQLite gateways only). */
  databasePath: string;
  /** The PostgreSQL database (PostgreSQL gateways only). */
  database?: TestDatabase;
  channels: Channels;
  logger: Logger;
  /** Every log line written, parsed. */
  logs: Record<string, unknown>[];
  dir: string;
  /** Calls the app in-process (no port): `path` is relative to http://gateway.test. */
  fetch(pathname: string, init?: RequestInit): Promise<Response>;
  /** POSTs a GraphQL operation with the test token (or `token`, or none when null). */
  graphql<T = any>(
    query: string,
    variables?: Record<string, unknown>,
    options?: { token?: string | null; headers?: Record<string, string> },
  ): Promise<{ status: number; body: { data?: T; errors?: { message: string; extensions?: Record<string, unknown> }[] } }>;
  /** Listens on a loopback port and returns its base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  env?: Record<string, string>;
  /** Replace some channels (the others are built from config, as in production). */
  channels?: Partial<Channels>;
  /** Do not start the dispatcher (to inspect QUEUED rows). */
  noDispatch?: boolean;
  /** The store: SQLite (default) or a fresh PostgreSQL database, or this one (another replica on it). */
  store?: 'sqlite' | 'postgres' | TestDatabase;
}

/** The SQLite file a config names. */
export function sqlitePath(config: Pick<Config, 'database'>): string {
  if (config.database.kind !== 'sqlite') throw new Error('not a SQLite configuration');
  return config.database.path;
}

/** A key shared by replicas of one test database (PostgreSQL needs NOTIFY_SECRET_KEY). */
export const testSecretKey = crypto.randomBytes(32).toString('hex');

/** A gateway on a fresh database (a temporary SQLite file, or a new PostgreSQL database), with the real migrations. */
export async function startGateway(options: TestGatewayOptions & { store: 'postgres' | TestDatabase }): Promise<TestGateway<PostgresStore>>;
export async function startGateway(options?: TestGatewayOptions & { store?: 'sqlite' }): Promise<TestGateway>;
export async function startGateway(options: TestGatewayOptions = {}): Promise<TestGateway<Store>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-gateway-test-'));
  const ownDatabase = options.store === 'postgres' ? await createTestDatabase() : undefined;
  try {
    return await startOn(dir, ownDatabase, options);
  } catch (error) {
    await ownDatabase?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

async function startOn(dir: string, ownDatabase: TestDatabase | undefined, options: TestGatewayOptions): Promise<TestGateway<Store>> {
  const database = ownDatabase ?? (typeof options.store === 'object' ? options.store : undefined);
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: database ? database.url : `file:${path.join(dir, 'notify.db')}`,
    ...(database ? { NOTIFY_SECRET_KEY: testSecretKey } : {}),
    // The outbox and the key file in this gateway's own folder, whatever the store.
    DATA_DIR: dir,
    OPS_TOKENS: testToken,
    LOG_LEVEL: 'debug',
    DISPATCH_POLL_MS: '50',
    RETRY_BASE_DELAY_MS: '50',
    RETRY_MAX_DELAY_MS: '200',
    PROVIDER_TIMEOUT_MS: '2000',
    ...options.env,
  });
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line));
      callback();
    },
  });
  const logger = createLogger({ level: config.logLevel, pretty: false, destination });
  const store = await openStore(config.database, { logger });
  const secretBox = new SecretBox(loadSecretKey(config.secretKey, config.dataDir));
  const channels = { ...createChannels(config, logger), ...options.channels } as Channels;
  await readyChannels(channels);
  const app = createApp({ config, store, channels, secretBox, logger });
  if (!options.noDispatch) app.start();
  let server: http.Server | undefined;

  const gateway: TestGateway<Store> = {
    app,
    store,
    config,
    databasePath: config.database.kind === 'sqlite' ? config.database.path : '',
    database,
    channels,
    logger,
    logs,
    dir,
    fetch: (pathname, init) => app.fetch(new Request(new URL(pathname, 'http://gateway.test'), init)),
    async graphql(query, variables, { token = testToken, headers = {} } = {}) {
      const response = await gateway.fetch('/graphql', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token === null ? {} : { 'OPS-Token': token }),
          ...headers,
        },
        body: JSON.stringify({ query, variables }),
      });
      return { status: response.status, body: await response.json() };
    },
    async listen() {
      if (!server) {
        server = http.createServer(app.handler);
        server.on('upgrade', app.upgrade);
      }
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    },
    async close() {
      await app.stop(2000);
      await app.closeWebSockets();
      if (server) {
        server.closeAllConnections();
        await new Promise((resolve) => server!.close(resolve));
      }
      await closeChannels(channels);
      await store.close();
      await ownDatabase?.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return gateway;
}

/** Polls until `check` returns a value that is not undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value as T;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export const deliveryFields = `
  id channel status provider recipient attempts providerMessageId idempotencyKey
  lastError { code message } nextAttemptAt createdAt updatedAt sentAt
  attemptLog { number outcome providerCode providerMessage durationMs }
`;

/** A mutation's one result, once its answer is checked: HTTP 200 and no GraphQL errors. */
export async function mutationResult(
  gateway: TestGateway,
  mutation: string,
  input: Record<string, unknown>,
  options?: { token?: string | null; headers?: Record<string, string> },
): Promise<any> {
  const { status, body } = await gateway.graphql(mutation, { input }, options);
  expect(status).toBe(200);
  expect(body.errors).toBeUndefined();
  return Object.values(body.data as Record<string, unknown>)[0];
}

/** The delivery as the API shows it (`deliveryFields`). */
export async function fetchDelivery(gateway: TestGateway, id: string): Promise<any> {
  const { body } = await gateway.graphql(`query($id: ID!) { delivery(id: $id) { ${deliveryFields} } }`, { id });
  return body.data.delivery;
}

/** Polls the delivery through the API until `check` accepts it. */
export function deliveryWhen(gateway: TestGateway, id: string, check: (delivery: any) => boolean): Promise<any> {
  return eventually(async () => {
    const current = await fetchDelivery(gateway, id);
    return check(current) ? current : undefined;
  });
}
