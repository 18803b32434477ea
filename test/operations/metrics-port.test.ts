import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/free-port';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tsx = path.join(root, 'node_modules', '.bin', 'tsx');

describe('npm start with METRICS_PORT', { timeout: 60_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-gateway-metrics-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('serves /metrics on METRICS_PORT only, logs JSON request lines with ids, and closes both ports on SIGTERM', async () => {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const child = spawn(tsx, ['src/main.ts'], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? os.homedir(),
        TMPDIR: os.tmpdir(),
        NODE_ENV: 'production',
        PORT: String(port),
        METRICS_PORT: String(metricsPort),
        HOST: '127.0.0.1',
        DATABASE_URL: `file:${path.join(dir, 'notify.db')}`,
        OPS_TOKENS: 'metrics-test-token-0123456789',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stdout += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const deadline = Date.now() + 25_000;
      while (!(stdout.includes('notify-gateway listening') && stdout.includes('metrics listening'))) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`gateway did not start:\n${stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const base = `http://127.0.0.1:${port}`;
      const metricsBase = `http://127.0.0.1:${metricsPort}`;

      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expect((await fetch(`${base}/metrics`)).status).toBe(404);
      const graphql = await fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'OPS-Token': 'metrics-test-token-0123456789', 'X-Request-Id': 'main-1' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect(graphql.status).toBe(200);
      expect(graphql.headers.get('x-request-id')).toBe('main-1');
      const scrape = await fetch(`${metricsBase}/metrics`);
      expect(scrape.status).toBe(200);
      const text = await scrape.text();
      expect(text).toContain('# TYPE notify_gateway_deliveries_sent_total counter');
      expect(text).toMatch(/^notify_gateway_http_requests_total\{method="GET",route="\/readyz",status_code="200"\} 1$/m);
      expect(text).toMatch(/^notify_gateway_http_requests_total\{method="GET",route="\/metrics",status_code="404"\} 1$/m);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      await expect(fetch(`${metricsBase}/metrics`)).rejects.toThrow();

      const lines = stdout
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines.find((line) => line.requestId === 'main-1')).toMatchObject({
        msg: 'request',
        method: 'POST',
        route: '/graphql',
        status: 200,
        operation: 'query __typename',
      });
      expect(stdout).not.toContain('metrics-test-token-0123456789');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
