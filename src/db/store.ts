import type { ApiTokenRow, AttemptRow, ChannelName, DeliveryRow, DeliveryStatus, NewDeliveryRow } from './schema';

export type StoreKind = 'sqlite' | 'postgres';

export interface DeliveryFilter {
  channel?: ChannelName;
  status?: DeliveryStatus;
  recipient?: string;
  createdAfter?: number;
  createdBefore?: number;
  callerId?: string;
}

export interface DeliveryCursor {
  createdAt: number;
  id: string;
}

export interface KeysetPage {
  after?: DeliveryCursor;
  before?: DeliveryCursor;
  limit: number;
  /** Read towards newer rows (for `last`/`before`); the caller reverses the result. */
  inverted: boolean;
}

export interface RecipientLimit {
  windowMs: number;
  max: number;
  label: string;
  /** What is counted: deliveries on the same channel to the same recipient (default), or every delivery of the caller. */
  scope?: 'recipient' | 'caller';
}

export type InsertOutcome =
  | { kind: 'created'; delivery: DeliveryRow }
  | { kind: 'existing'; delivery: DeliveryRow }
  | { kind: 'limited'; retryAfterMs: number; limit: RecipientLimit };

export interface NewAttempt {
  number: number;
  startedAt: number;
  durationMs: number;
  outcome: AttemptRow['outcome'];
  providerCode: string | null;
  providerMessage: string | null;
}

export type DeliveryPatch = Partial<
  Pick<
    DeliveryRow,
    | 'status'
    | 'attempts'
    | 'lastErrorCode'
    | 'lastErrorMessage'
    | 'providerMessageId'
    | 'nextAttemptAt'
    | 'claimedUntil'
    | 'sentAt'
    | 'sealedSecrets'
    | 'digestId'
  >
>;

export interface StatusCount {
  channel: ChannelName;
  status: DeliveryStatus;
  count: number;
}

export interface ChannelCount {
  channel: ChannelName;
  count: number;
}

export interface StatsQuery {
  /** Deliveries created at or after `from` and before `to` (ms). */
  from: number;
  to: number;
  /** Bucket width in ms; buckets start at multiples of it since the epoch (UTC). */
  bucketMs: number;
  channel?: ChannelName;
  callerId?: string;
}

export interface StatsRow extends StatusCount {
  bucketStart: number;
}

/** One attempt about to start on a paced channel (a DingTalk robot, say): the slot it asks for. */
export interface PacingRequest {
  channel: ChannelName;
  recipient: string;
  deliveryId: string;
  /** The attempt's number: the reservation is `<delivery id>#<number>` and ends when that attempt is recorded. */
  number: number;
  now: number;
  /** Attempts counted: those that ended (start + duration) at or after `now - windowMs`. */
  windowMs: number;
  /** No attempt lasts longer (its claim ends first): how far back to look for attempts that ended in the window. */
  longestAttemptMs: number;
  /** A rate-limited attempt at or after `now - muteMs` means the recipient is muted. */
  muteMs: number;
  /** A reservation whose attempt was never recorded (its process died) stops counting then: the claim's end. */
  expiresAt: number;
}

/** What the store read, in the same transaction, for the pacing rule to decide on. */
export interface PacingWindow {
  /**
   * When the attempts in the window ended (start + duration), oldest first: the latest the provider can have received
   * each. Providers count arrivals, and a burst's requests arrive spread out after they start: counted by their starts,
   * the next minute's first messages could land within the provider's minute of the last ones.
   */
  attemptEnds: number[];
  /** Reservations of attempts under way, not recorded yet. */
  underway: number;
  /** Start of the latest rate-limited attempt within the mute, if any. */
  mutedAt?: number;
  /** Turns already given out: when the other waiting deliveries to this recipient are due (rescheduled ones only). */
  turns: number[];
}

/** Either the slot was reserved, or the delivery was sent back to wait until `turn` (and is no longer SENDING). */
export type PacingOutcome = { reserved: true } | { reserved: false; turn: number; delivery?: DeliveryRow };

export const reservationId = (deliveryId: string, number: number) => `${deliveryId}#${number}`;

/** A delivery whose attempt is about to start may carry the others waiting for the same recipient (an alert-storm digest). */
export interface FoldRequest {
  channel: ChannelName;
  recipient: string;
  /** The delivery that carries the digest: SENDING under `claimedUntil`, with its pacing slot reserved. */
  carrierId: string;
  claimedUntil: number;
  now: number;
  /** Fold only when more than this many deliveries wait for the recipient (what its pace lets out in the next minute). */
  threshold: number;
  /** Read at most this many waiting deliveries, oldest first. */
  limit: number;
}

/** What an erasure looks for, and what it writes in the address's place. */
export interface ErasureRequest {
  /** The normalised email address (lower case) or E.164 mobile number. */
  address: string;
  /** Every way it may be written in free text (a provider's reply), the address first: a mobile's national number, say. */
  spellings: string[];
  /** Written where the address was: not derived from it. */
  marker: string;
  now: number;
}

/** Tells the other processes on the same database which deliveries changed, and hears of theirs: ids only. */
export interface ChangeFeed {
  /** Deliveries this process changed (committed). */
  announce(ids: readonly string[]): void;
  /**
   * `ids`: deliveries another process changed. `undefined`: the feed was cut and is back, and what changed meanwhile
   * is unknown: read again whatever is being watched.
   */
  listen(handler: (ids: readonly string[] | undefined) => void): void;
  /** False while the feed is cut (it reconnects by itself). */
  readonly connected: boolean;
}

/** One step of the retention pass: what it did, and how long its transaction took, by which the pass sizes the next. */
export interface RetentionStep {
  count: number;
  /**
   * The step's own transaction, not the wait to start it nor the answer's trip back: on a loaded event loop those
   * take longer than the work and would shrink every batch to its smallest, rewriting the same index pages per row.
   */
  transactionMs: number;
}

/**
 * Everything the gateway keeps. Async so that a networked database can implement it without touching the
 * delivery service or the resolvers. A write resolves only once it is durably committed; an implementation may commit
 * several callers' writes in one transaction (group commit) as long as each stays atomic and fails alone.
 */
export interface Store {
  readonly kind: StoreKind;
  /**
   * True when other gateway processes may use the database at the same time (PostgreSQL). Start-up then hands back only
   * the claims whose lease ran out, never those of a replica still at work.
   */
  readonly shared: boolean;
  /** Records a delivery unless the caller's idempotency key is taken or a recipient limit is reached, atomically. */
  insertDelivery(row: NewDeliveryRow, limits?: RecipientLimit[]): Promise<InsertOutcome>;
  getDelivery(id: string): Promise<DeliveryRow | undefined>;
  getDeliveries(ids: readonly string[]): Promise<DeliveryRow[]>;
  listDeliveries(filter: DeliveryFilter, page: KeysetPage): Promise<DeliveryRow[]>;
  listAttempts(deliveryId: string): Promise<AttemptRow[]>;
  /**
   * Moves due deliveries (QUEUED or RETRYING, next attempt at or before `now`) to SENDING with a claim until
   * `leaseUntil`. Never hands one delivery to two callers, also across processes.
   */
  claimDue(now: number, limit: number, leaseUntil: number): Promise<DeliveryRow[]>;
  /**
   * Hands SENDING deliveries back to the queue: `lapsed`, those whose claim ran out (its holder died or stalled); `all`,
   * every one (at the start of the only process using the database: a SENDING row was caught mid-attempt by a crash).
   * Each such attempt is recorded as INTERRUPTED and counts towards `maxAttempts`, so a message that crashes the
   * gateway cannot loop forever. Returns the deliveries as they are now.
   */
  releaseClaims(now: number, maxAttempts: number, which: 'all' | 'lapsed'): Promise<DeliveryRow[]>;
  /**
   * Takes a slot for one attempt on a paced recipient, or sends the delivery back to wait: the store reads the window
   * and applies `decide` (the pacing rule: undefined to go, else the time of its turn) in one transaction that no other
   * reservation for the same recipient can interleave with, in this process or another.
   */
  reservePacingSlot(request: PacingRequest, decide: (window: PacingWindow) => number | undefined): Promise<PacingOutcome>;
  /**
   * Records an attempt, applies its effect on the delivery and ends its pacing reservation, in one transaction. With
   * `claimedUntil`, the patch only applies while the delivery is still SENDING under that claim; otherwise only the
   * attempt is recorded.
   */
  finishAttempt(deliveryId: string, attempt: NewAttempt, patch: DeliveryPatch, claimedUntil?: number): Promise<DeliveryRow>;
  /**
   * Folds deliveries waiting for the carrier's recipient (QUEUED or RETRYING, oldest first) into its digest, in one
   * transaction no claim or other fold can interleave with, in this process or another: when more than
   * `request.threshold` wait, `choose` picks among them (by size, mentions) and those move to SENDING under the carrier's
   * claim with `digestId` set to the carrier (the carrier's own `digestId` too). Returns the folded ones, or [] when
   * nothing was folded (the carrier then sends its own message alone).
   */
  foldDigest(request: FoldRequest, choose: (waiting: DeliveryRow[]) => string[]): Promise<DeliveryRow[]>;
  /**
   * Ends a digest after its carrier's attempt was recorded: `sent`, the deliveries it folded are SENT; otherwise they go
   * back to the queue, due now, no longer folded (and the carrier's own `digestId` is cleared). Returns them as they are now.
   */
  settleDigest(carrierId: string, sent: boolean, now: number): Promise<DeliveryRow[]>;
  /** The deliveries a digest carried (its carrier included), oldest first. */
  listFolded(carrierId: string): Promise<DeliveryRow[]>;
  /** Applies `patch` only while the delivery is in one of `fromStatuses`; undefined when it was not. */
  transition(id: string, fromStatuses: readonly DeliveryStatus[], patch: DeliveryPatch): Promise<DeliveryRow | undefined>;
  countByStatus(): Promise<StatusCount[]>;
  oldestPendingCreatedAt(): Promise<number | undefined>;
  /** Deliveries not final yet (QUEUED, RETRYING, SENDING) by channel; read through the status index. */
  countPending(): Promise<ChannelCount[]>;
  /** Deliveries created in the window, counted by creation-time bucket, channel and current status. */
  deliveryStats(query: StatsQuery): Promise<StatsRow[]>;

  /**
   * Deletes up to `limit` final deliveries (SENT, FAILED, CANCELLED) created before `before`, oldest first, with their
   * attempts; deliveries a purged carrier's digest folded lose the link. One short transaction; says how many went.
   */
  purgeFinal(before: number, limit: number): Promise<RetentionStep>;
  /**
   * Replaces the content (payload, sealed secrets) of up to `limit` final deliveries created before `before` with the
   * redaction marker and sets `contentRedactedAt`, oldest first. One short transaction; says how many.
   */
  redactContent(before: number, limit: number, now: number): Promise<RetentionStep>;
  /**
   * Runs `work` unless another process on the database runs its own `name` now: then resolves undefined at once. Alone
   * on the database (SQLite), it always runs.
   */
  exclusively<T>(name: 'retention', work: () => Promise<T>): Promise<T | undefined>;
  /** Gives up to `pages` free pages back to the file system; `count` is how many are still free (0: nothing to give). */
  reclaimSpace(pages: number): Promise<RetentionStep>;
  /**
   * Erases one recipient: every delivery to the address (alone or in a list) or naming it in its content loses its
   * content, the address becomes the marker wherever the row or its attempts held it, and the request hash goes.
   * Returns how many deliveries were erased.
   */
  eraseRecipient(request: ErasureRequest): Promise<number>;

  findTokenByHash(tokenHash: string): Promise<ApiTokenRow | undefined>;
  insertToken(row: ApiTokenRow): Promise<void>;
  listTokens(): Promise<ApiTokenRow[]>;
  revokeToken(nameOrId: string, now: number): Promise<boolean>;
  touchToken(id: string, now: number): Promise<void>;

  /** The value stored under `name`, after storing `value` there when it held none: the first writer wins. */
  settingOnce(name: string, value: string): Promise<string>;

  /** Present when other processes share the database: how live updates reach them and theirs reach this one. */
  readonly changes?: ChangeFeed;

  ping(): Promise<boolean>;
  /**
   * A small write through the whole write path (lock, new pages, commit, and the fsync that makes it durable), left
   * behind by nothing: resolves once the database takes writes, throws the database's error while it does not.
   */
  probeWrite(): Promise<void>;
  migrationsCurrent(): Promise<boolean>;
  close(): Promise<void>;
}
