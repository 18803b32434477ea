import type { PacingRule } from '../channels/channel';
import type { PacingWindow } from '../db/store';

/**
 * The pacing rule: undefined when the attempt may start now, else the time of its turn. Each waiting delivery gets a
 * turn of its own: when the window has room again after the attempts and the turns ahead of it. A newcomer queues
 * behind every turn given out; one whose turn came (`previousTurn`) keeps its place among them.
 */
export function pacingTurn(rule: PacingRule, window: PacingWindow, now: number, previousTurn?: number): number | undefined {
  const { attemptEnds, underway, mutedAt, turns } = window;
  if (mutedAt === undefined && attemptEnds.length + underway < rule.perWindow) return undefined;
  const ahead = turns.filter((at) => previousTurn === undefined || at <= previousTurn);
  const taken = [...attemptEnds, ...Array<number>(underway).fill(now), ...ahead].sort((a, b) => a - b);
  const roomAt = taken.length >= rule.perWindow ? taken[taken.length - rule.perWindow] + rule.windowMs + 1 : now;
  return Math.max(roomAt, mutedAt === undefined ? 0 : mutedAt + rule.muteMs, now + 1000);
}
