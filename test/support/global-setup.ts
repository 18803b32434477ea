import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { chromiumInstalled, chromiumPath } from './browser';
import { postgresReachable, postgresServerUrl } from './postgres';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Once per run: is the PostgreSQL server up (the PostgreSQL suites run only then; with CI=true its absence fails the
 * run), likewise is Chromium installed (for the browser suites), and the bundle `npm start` runs is built, for the
 * tests that start replicas as production does.
 */
export default async function setup(project: TestProject): Promise<void> {
  const available = await postgresReachable();
  if (!available) {
    const where = new URL(postgresServerUrl).host;
    if (process.env.CI === 'true') {
      throw new Error(`PostgreSQL is not reachable at ${where} (TEST_POSTGRES_URL), and CI=true requires it`);
    }
    console.warn(`\n  PostgreSQL not reachable at ${where}: the PostgreSQL suites are SKIPPED (set TEST_POSTGRES_URL; CI=true fails instead)\n`);
  }
  project.provide('postgresAvailable', available);
  // The browser suites (test/console) need Debian's Chromium: skipped without it, said once here; CI=true fails.
  const chromium = chromiumInstalled();
  if (!chromium) {
    if (process.env.CI === 'true') {
      throw new Error(`Chromium not found at ${chromiumPath} (CHROMIUM_PATH), and CI=true requires it: apt-get install -y chromium`);
    }
    console.warn(`\n  Chromium not found at ${chromiumPath}: the browser suites are SKIPPED (apt-get install -y chromium; CI=true fails instead)\n`);
  }
  project.provide('chromiumAvailable', chromium);
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
}
