// The real gateway app with its dispatcher left stopped, so the run measures accepting (validate, authenticate,
// commit, answer) and nothing else. Logs as the gateway logs (LOG_LEVEL, info by default) to stdout.
import http from 'node:http';
import v8 from 'node:v8';
import { createApp } from '../../src/app';
import { createChannels } from '../../src/channels';
import { loadConfig } from '../../src/config';
import { openStore } from '../../src/db';
import { createLogger } from '../../src/logger';
import { loadSecretKey, SecretBox } from '../../src/secrets';

// As src/main.ts sets it.
v8.setFlagsFromString('--heap-growing-percent=60');
const config = loadConfig(process.env);
const logger = createLogger({ level: config.logLevel, pretty: false });
const store = await openStore(config.database, { logger });
const secretBox = new SecretBox(loadSecretKey(config.secretKey, config.dataDir));
const app = createApp({ config, store, channels: createChannels(config, logger), secretBox, logger });
const server = http.createServer(app.handler);
server.listen(config.port, '127.0.0.1');
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));
// The purge scenario: one retention pass from the start, while the load runs (its log line says when it ended).
if (process.env.BENCH_PURGE_NOW === '1') void app.retention.runPass();
