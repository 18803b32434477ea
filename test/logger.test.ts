import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// Lines of one event-loop turn are written together after it: the ones logged right before an exit must still arrive.
const script = `
  import { createLogger } from './src/logger.ts';
  const logger = createLogger({ level: 'info', pretty: false });
  for (let i = 0; i < 2000; i++) logger.info({ i }, 'line');
  setImmediate(() => {
    logger.info({ i: 2000 }, 'next turn');
    logger.fatal('then exit at once');
    process.exit(3);
  });
`;

describe('logging to stdout', () => {
  it('writes every line, in order, including those logged just before process.exit', async () => {
    const run = promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root });
    const result = await run.catch((error: { code: number; stdout: string }) => error);
    expect('code' in result ? result.code : 0).toBe(3);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { i?: number; msg: string });
    expect(lines).toHaveLength(2002);
    expect(lines.slice(0, 2001).map((line) => line.i)).toEqual(Array.from({ length: 2001 }, (_, i) => i));
    expect(lines.at(-1)!.msg).toBe('then exit at once');
  });
});
