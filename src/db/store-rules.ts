import type { DeliveryRow } from './schema';
import type { DeliveryPatch, ErasureRequest, NewAttempt, RecipientLimit, RetentionStep } from './store';

// The decisions every store makes the same way. A store only reads and writes; what the rows it read mean, and what it
// may write, is decided here.

/** The columns a patch may set, and nothing else (never the id, the recipient, the payload or who sent it). */
const patchable = new Set<string>([
  'status',
  'attempts',
  'lastErrorCode',
  'lastErrorMessage',
  'providerMessageId',
  'nextAttemptAt',
  'claimedUntil',
  'sentAt',
  'sealedSecrets',
  'digestId',
  'updatedAt',
]);

/** The patch's columns with a value (undefined means "leave it"), checked against what a patch may change. */
export function patchEntries(patch: DeliveryPatch & { updatedAt?: number }): [string, unknown][] {
  const entries = Object.entries(patch).filter(([, value]) => value !== undefined);
  for (const [key] of entries) if (!patchable.has(key)) throw new Error(`a delivery patch cannot set ${key}`);
  return entries;
}

/**
 * A recipient limit over the deliveries already in its window (`used` of them, the oldest created at `oldest`):
 * undefined when one more fits, else how long until the oldest leaves the window (at least a second).
 */
export function limitRetryAfterMs(limit: RecipientLimit, used: number, oldest: number | null, createdAt: number): number | undefined {
  if (used < limit.max) return undefined;
  return Math.max(1000, (oldest ?? createdAt) + limit.windowMs - createdAt);
}

/** Where a recipient limit's window starts for a delivery created at `createdAt` (rows created after it count). */
export const limitWindowStart = (limit: RecipientLimit, createdAt: number) => createdAt - limit.windowMs;

/** The number the next recorded attempt of this delivery gets: after every attempt counted or recorded. */
export function nextAttemptNumber(delivery: Pick<DeliveryRow, 'attempts'>, lastRecorded: number | null): number {
  return Math.max(delivery.attempts, lastRecorded ?? 0) + 1;
}

/**
 * What recording an attempt does to its delivery. The attempt keeps its number unless another was recorded under it
 * meanwhile. A claim that lapsed (the attempt outlived its lease, and someone else may hold the delivery now) no longer
 * decides the delivery's state: only the count of attempts moves.
 */
export function attemptEffect(
  current: DeliveryRow,
  lastRecorded: number | null,
  attempt: NewAttempt,
  patch: DeliveryPatch,
  claimedUntil: number | undefined,
): { number: number; changes: DeliveryPatch & { updatedAt: number } } {
  const number = Math.max(attempt.number, nextAttemptNumber(current, lastRecorded));
  const held = claimedUntil === undefined || (current.status === 'SENDING' && current.claimedUntil === claimedUntil);
  if (held && number === attempt.number) return heldAttemptEffect(attempt, patch);
  const updatedAt = attempt.startedAt + attempt.durationMs;
  return {
    number,
    changes: held ? { ...patch, attempts: number, updatedAt } : { attempts: Math.max(current.attempts, number), updatedAt },
  };
}

/**
 * `attemptEffect` in the usual case, for a store that checks the case in its write instead of reading the row first:
 * the delivery is SENDING under the attempt's claim, counts fewer than `attempt.number` attempts, and has none recorded
 * from that number on.
 */
export function heldAttemptEffect(attempt: NewAttempt, patch: DeliveryPatch): { number: number; changes: DeliveryPatch & { updatedAt: number } } {
  return { number: attempt.number, changes: { ...patch, attempts: attempt.number, updatedAt: attempt.startedAt + attempt.durationMs } };
}

export const interruptedMessage = 'The gateway stopped during this attempt; the provider may or may not have received it';

/**
 * A SENDING delivery whose attempt was cut off (its process died, or its claim lapsed): the attempt is recorded as
 * INTERRUPTED and counts, and the delivery is retried at once unless that was its last attempt.
 */
export function interruptedEffect(
  delivery: DeliveryRow,
  lastRecorded: number | null,
  now: number,
  maxAttempts: number,
): { attempt: NewAttempt; changes: DeliveryPatch & { updatedAt: number } } {
  const number = nextAttemptNumber(delivery, lastRecorded);
  const lastError = { lastErrorCode: 'INTERRUPTED', lastErrorMessage: interruptedMessage };
  return {
    attempt: {
      number,
      // Claiming sets updatedAt, so it is when the attempt began; how long it ran is unknown.
      startedAt: delivery.updatedAt,
      durationMs: 0,
      outcome: 'INTERRUPTED',
      providerCode: 'INTERRUPTED',
      providerMessage: interruptedMessage,
    },
    changes:
      number >= maxAttempts
        ? { ...lastError, status: 'FAILED', attempts: number, claimedUntil: null, nextAttemptAt: null, sealedSecrets: null, digestId: null, updatedAt: now }
        : { ...lastError, status: 'RETRYING', attempts: number, claimedUntil: null, nextAttemptAt: now, digestId: null, updatedAt: now },
  };
}

/**
 * A waiting delivery folded into a digest: held under the carrier's claim (so a carrier that dies takes it down with it,
 * and `releaseClaims` hands it back), not attempted on its own.
 */
export function foldedEffect(carrierId: string, claimedUntil: number, now: number): DeliveryPatch & { updatedAt: number } {
  return { status: 'SENDING', digestId: carrierId, claimedUntil, updatedAt: now };
}

/**
 * What a digest's outcome does to the deliveries it folded. Sent: SENT with the carrier's time, no attempt of their own
 * (a robot's pacing counts attempts; the digest's is on the carrier). Not sent: back in the queue, due now and no longer
 * folded, their own attempts untouched: each goes alone or into the next digest, and keeps its own retry rules.
 */
export function digestOutcomeEffect(sent: boolean, now: number): DeliveryPatch & { updatedAt: number } {
  return sent
    ? { status: 'SENT', sentAt: now, claimedUntil: null, nextAttemptAt: null, lastErrorCode: null, lastErrorMessage: null, sealedSecrets: null, updatedAt: now }
    : { status: 'QUEUED', digestId: null, claimedUntil: null, nextAttemptAt: now, updatedAt: now };
}

/** A paced delivery sent back to wait for its turn: not attempted, its claim given up. */
export function deferredEffect(turn: number, now: number): DeliveryPatch & { updatedAt: number } {
  return { status: 'QUEUED', nextAttemptAt: turn, claimedUntil: null, updatedAt: now };
}

/** What a delivery's payload becomes once its content is gone (retention or erasure). */
export const redactedPayload = '{"redacted":true}';

/** A retention step with nothing to do: no transaction ran. */
export const nothingToRetain: RetentionStep = Object.freeze({ count: 0, transactionMs: 0 });

/** Final deliveries: only these are purged or redacted. Literal SQL, so that the planner can use the status index. */
export const finalStatusesSql = "('SENT', 'FAILED', 'CANCELLED')";

/** The rows one purge or redaction transaction handles: a few milliseconds of writing, then others get their turn. */
export const retentionBatch = 200;

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `text` with every spelling of the address replaced by the marker, case-insensitively. */
export function scrubbed(text: string, request: Pick<ErasureRequest, 'spellings' | 'marker'>): string {
  const pattern = new RegExp(request.spellings.map(escapeRegExp).join('|'), 'gi');
  return text.replace(pattern, request.marker);
}

/**
 * What erasing the address does to one delivery, or undefined when the delivery is not the address's: the address is
 * its recipient, one of its recipients (the others stay), or is named in its payload (cc, bcc). Free text that may
 * echo the address (the last error, the caller's idempotency key) has it replaced; the key is dropped when it named it.
 */
export function erasureEffect(
  row: { recipient: string; payload: string; idempotencyKey: string | null; lastErrorMessage: string | null },
  request: ErasureRequest,
): { recipient: string; idempotencyKey: string | null; lastErrorMessage: string | null } | undefined {
  const recipients = row.recipient.split(', ');
  const listed = recipients.some((recipient) => recipient.toLowerCase() === request.address);
  if (!listed && !row.payload.toLowerCase().includes(JSON.stringify(request.address))) return undefined;
  const recipient = recipients.map((each) => (each.toLowerCase() === request.address ? request.marker : each)).join(', ');
  const keyed = row.idempotencyKey != null && scrubbed(row.idempotencyKey, request) !== row.idempotencyKey;
  return {
    recipient,
    idempotencyKey: keyed ? null : row.idempotencyKey,
    lastErrorMessage: row.lastErrorMessage == null ? null : scrubbed(row.lastErrorMessage, request),
  };
}
