import fs from 'node:fs';
import { threadId } from 'node:worker_threads';
const dir = process.env.TRACE_DIR;
export const tracing = !!dir;
const events: unknown[][] = [];
export const now = () => performance.timeOrigin + performance.now();
export function trace(...event: unknown[]) {
  if (dir) events.push(event);
}
export function flushTrace(name: string) {
  if (!dir) return;
  fs.writeFileSync(`${dir}/${name}-${process.pid}-${threadId}.json`, JSON.stringify(events));
  events.length = 0;
}
if (dir && threadId === 0) process.on('exit', () => flushTrace('main'));
