import type { Config } from '../config';
import type { ChannelName } from '../db/schema';
import type { RecipientLimit } from '../db/store';
import { RateLimitedError } from '../errors';

const minuteMs = 60_000;
const hourMs = 60 * minuteMs;

export type LimitsConfig = Pick<Config, 'sms' | 'rateLimitPerTokenPerMinute'>;

/**
 * The limits a new delivery must pass. The store checks them in the transaction that records it, counting rows in
 * the database, so they hold across restarts and cannot be raced by concurrent requests.
 */
export function sendLimits(config: LimitsConfig, channel: ChannelName): RecipientLimit[] {
  const limits: RecipientLimit[] = [];
  const perToken = config.rateLimitPerTokenPerMinute;
  if (perToken > 0) limits.push({ scope: 'caller', windowMs: minuteMs, max: perToken, label: `${perToken} a minute per token` });
  if (channel === 'SMS') {
    const { perMinute, perHour, perDay } = config.sms.limits;
    limits.push(
      ...[
        { windowMs: minuteMs, max: perMinute, label: `${perMinute} a minute` },
        { windowMs: hourMs, max: perHour, label: `${perHour} an hour` },
        { windowMs: 24 * hourMs, max: perDay, label: `${perDay} a day` },
      ].filter((limit) => limit.max > 0),
    );
  }
  return limits;
}

export function rateLimitedError(limit: RecipientLimit, retryAfterMs: number): RateLimitedError {
  const retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  const what = limit.scope === 'caller' ? 'Too many requests from this token' : 'Too many messages to this number';
  return new RateLimitedError(`${what} (limit ${limit.label}); try again in ${retryAfterSeconds} s`, retryAfterSeconds);
}
