import http from 'node:http';
import v8 from 'node:v8';
import { createApp } from './app';
import { ensureBootstrapToken } from './auth';
import { closeChannels, createChannels, readyChannels } from './channels';
import { ConfigError, describeDatabase, loadConfig, type Config } from './config';
import { openStore } from './db';
import { SchemaTooNewError } from './db/migrations';
import { createLogger } from './logger';
import { checkSecretKey, loadSecretKey, SecretBox } from './secrets';

// Under load the request machinery (yoga, envelop, whatwg-node) promotes garbage into the old generation at ~10 MB/s,
// and V8 lets a small heap grow up to 4× its live size before collecting it: 220 MB resident in a 10 s burst. Grown
// by 60% at most between full collections it peaks near 170 MB for the same throughput; 30% saved 10 MB more but the
// extra full collections pushed the query p99 past 5 ms (V8 reads this flag whenever it sets the next limit, so setting
// it at run time works; see BENCHMARKS.md).
v8.setFlagsFromString('--heap-growing-percent=60');

function readConfig(): Config {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}

const config = readConfig();
const logger = createLogger({ level: config.logLevel, pretty: config.env === 'development' && process.stdout.isTTY });
/** One clear line, the log flushed, exit 1. */
function fatal(message: string, fields: Record<string, unknown> = {}): Promise<never> {
  logger.fatal(fields, message);
  logger.flush(() => process.exit(1));
  return new Promise<never>(() => {});
}

const store = await openStore(config.database, { logger }).catch((error: Error) =>
  // A schema from a newer gateway, or a database that cannot be reached.
  fatal(error instanceof SchemaTooNewError ? error.message : `cannot open the database: ${error.message}`, {
    database: describeDatabase(config.database),
  }),
);
const secretBox = new SecretBox(loadSecretKey(config.secretKey, config.dataDir));
await checkSecretKey(store, secretBox).catch((error: Error) => fatal(error.message));
const channels = createChannels(config, logger);
const app = createApp({ config, store, channels, secretBox, logger });

const bootstrapToken = await ensureBootstrapToken(store, config.opsTokens);
if (bootstrapToken) {
  // Printed once, on purpose outside the log: only its hash is kept.
  console.log(`\n  No OPS_TOKENS configured: generated an API token. It is shown only this once:\n\n    OPS-Token: ${bootstrapToken}\n`);
}
// Alone on the database (SQLite), every claim left at start was cut off by the last stop; on a shared one, only
// lapsed claims are safe to hand back (the others belong to replicas at work).
await app.dispatcher.release();
// The SMTP thread has been loading meanwhile: no first attempt should pay for it.
await readyChannels(channels);
await app.warmUp();

const server = http.createServer(app.handler);
server.on('upgrade', app.upgrade);
server.on('error', (error: NodeJS.ErrnoException) => {
  void fatal(`cannot listen on ${config.host}:${config.port}: ${error.code ?? error.message}`, {
    code: error.code,
    host: config.host,
    port: config.port,
  });
});
server.listen(config.port, config.host, () => {
  app.start();
  const development = Object.values(channels)
    .filter((channel) => channel.development)
    .map((channel) => `${channel.channel} → ${channel.provider}`);
  logger.info(
    {
      url: `http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${(server.address() as { port: number }).port}/graphql`,
      database: describeDatabase(config.database),
    },
    'notify-gateway listening',
  );
  if (development.length > 0) {
    logger.warn({ channels: development }, 'DEVELOPMENT MODE: these channels do not reach real recipients');
  }
});

// With METRICS_PORT, Prometheus scrapes a listener of its own (firewalled apart, say) and the main port has no /metrics.
const metricsServer = config.metricsPort === undefined ? undefined : http.createServer(app.metricsHandler);
metricsServer?.on('error', (error) => {
  logger.fatal({ err: error, port: config.metricsPort }, 'cannot serve metrics on METRICS_PORT');
  process.exit(1);
});
metricsServer?.listen(config.metricsPort, config.host, () => {
  const { port } = metricsServer.address() as { port: number };
  logger.info({ url: `http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${port}/metrics` }, 'metrics listening');
});

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping: no new requests, finishing attempts under way');
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // Upgraded sockets are no longer the server's: closed here, so that their clients reconnect to another replica now.
  const socketsClosed = app.closeWebSockets();
  app.service.stopWaiting();
  const finished = await app.stop(config.shutdownTimeoutMs);
  if (!finished) logger.warn('attempts still under way at the deadline; they will be picked up at the next start');
  await socketsClosed;
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 1000))]);
  server.closeAllConnections();
  metricsServer?.close();
  metricsServer?.closeAllConnections();
  await closeChannels(channels);
  await store.close();
  logger.info('stopped');
  // Logs are written asynchronously: exit only once the last lines are out.
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
