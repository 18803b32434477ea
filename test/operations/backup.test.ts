import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { startGateway, testSecretKey, type TestGateway } from '../support/gateway';

const root = new URL('../..', import.meta.url).pathname;

function backupCli(databasePath: string, file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/backup.ts', file],
      { cwd: root, env: { ...process.env, DATABASE_URL: `file:${databasePath}`, NOTIFY_SECRET_KEY: testSecretKey } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const sendEmail = 'mutation($n: String!) { sendEmail(input: { to: ["ops@example.com"], subject: $n, content: "burst", wait: false }) { ... on Delivery { id } } }';

let dir: string;
const gateways: TestGateway[] = [];
afterEach(async () => {
  for (const gateway of gateways.splice(0)) await gateway.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('npm run backup during a send burst: a sound copy, and the README restore procedure brings back what it holds', async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-backup-'));
  const databasePath = path.join(dir, 'notify.db');
  const env = { DATABASE_URL: `file:${databasePath}`, NOTIFY_SECRET_KEY: testSecretKey, SEND_WAIT_MS: '0' };
  const running = await startGateway({ env });
  gateways.push(running);

  const accepted: string[] = [];
  let bursting = true;
  const burst = (async () => {
    for (let n = 0; bursting; n++) {
      const answers = await Promise.all([0, 1, 2, 3].map((k) => running.graphql(sendEmail, { n: `${n}.${k}` })));
      for (const { body } of answers) accepted.push(body.data.sendEmail.id);
    }
  })();
  while (accepted.length < 40) await new Promise((resolve) => setTimeout(resolve, 10));
  const acceptedBefore = [...accepted];
  const backupFile = path.join(dir, 'backup.db');
  const backup = await backupCli(databasePath, backupFile);
  const acceptedDuring = accepted.length - acceptedBefore.length;
  bursting = false;
  await burst;

  expect(backup).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Wrote .*backup\.db: \d+ deliveries, [\d.]+ MB\.\n$/) });
  expect(acceptedDuring).toBeGreaterThan(0);
  const copy = new Database(backupFile, { readonly: true });
  expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
  copy.close();
  // The running gateway lost nothing.
  expect((await running.store.getDeliveries(accepted)).length).toBe(accepted.length);
  // A backup never overwrites a file.
  const size = fs.statSync(backupFile).size;
  expect(await backupCli(databasePath, backupFile)).toMatchObject({ code: 2, stderr: expect.stringContaining('exists already') });
  expect(fs.statSync(backupFile).size).toBe(size);

  // README, "Backup and restore": stop the gateway, replace the file, remove -wal and -shm, start.
  gateways.splice(0);
  await running.close();
  fs.copyFileSync(backupFile, databasePath);
  fs.rmSync(`${databasePath}-wal`, { force: true });
  fs.rmSync(`${databasePath}-shm`, { force: true });
  const restored = await startGateway({ env, noDispatch: true });
  gateways.push(restored);
  const served: (string | undefined)[] = [];
  for (const id of acceptedBefore) {
    const { body } = await restored.graphql('query($id: ID!) { delivery(id: $id) { id } }', { id });
    served.push(body.data?.delivery?.id);
  }
  expect(served).toEqual(acceptedBefore);
});
