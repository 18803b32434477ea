import type { ApiTokenRow, AttemptRow, ChannelName, DeliveryRow, DeliveryStatus, NewDeliveryRow } from './schema';

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

/**
 * Everything the gateway keeps. Async so that a networked database can implement it without touching the
 * delivery service or the resolvers. A write resolves only once it is durably committed; an implementation may commit
 * several callers' writes in one transaction (group commit) as long as each stays atomic and fails alone.
 */
export interface Store {
  /** Records a delivery unless the caller's idempotency key is taken or a recipient limit is reached, atomically. */
  insertDelivery(row: NewDeliveryRow, limits?: RecipientLimit[]): Promise<InsertOutcome>;
  getDelivery(id: string): Promise<DeliveryRow | undefined>;
  getDeliveries(ids: readonly string[]): Promise<DeliveryRow[]>;
  listDeliveries(filter: DeliveryFilter, page: KeysetPage): Promise<DeliveryRow[]>;
  listAttempts(deliveryId: string): Promise<AttemptRow[]>;
  /** Moves due deliveries (and SENDING ones whose claim expired) to SENDING with a claim until `leaseUntil`. */
  claimDue(now: number, limit: number, leaseUntil: number): Promise<DeliveryRow[]>;
  /**
   * Hands every SENDING delivery back to the queue. Called once at start: the embedded database belongs to one gateway
   * process, so a SENDING row at start was caught mid-attempt by a crash. Each such attempt is recorded as INTERRUPTED
   * and counts towards `maxAttempts` (a message that crashes the gateway cannot loop forever).
   */
  releaseClaims(now: number, maxAttempts?: number): Promise<number>;
  /**
   * Records an attempt and applies its effect on the delivery in one transaction. With `claimedUntil`, the patch only
   * applies while the delivery is still SENDING under that claim; otherwise only the attempt is recorded.
   */
  finishAttempt(deliveryId: string, attempt: NewAttempt, patch: DeliveryPatch, claimedUntil?: number): Promise<DeliveryRow>;
  /** Applies `patch` only while the delivery is in one of `fromStatuses`; undefined when it was not. */
  transition(id: string, fromStatuses: readonly DeliveryStatus[], patch: DeliveryPatch): Promise<DeliveryRow | undefined>;
  /** Attempts started at or after `since` for this channel and recipient, oldest first. */
  recentAttempts(
    channel: ChannelName,
    recipient: string,
    since: number,
  ): Promise<Pick<AttemptRow, 'deliveryId' | 'number' | 'startedAt'>[]>;
  /** Start time of the latest attempt with this outcome for this channel and recipient at or after `since`. */
  lastAttemptAt(channel: ChannelName, recipient: string, outcome: AttemptRow['outcome'], since: number): Promise<number | undefined>;
  countByStatus(): Promise<StatusCount[]>;
  oldestPendingCreatedAt(): Promise<number | undefined>;
  /** Deliveries not final yet (QUEUED, RETRYING, SENDING) by channel; read through the status index. */
  countPending(): Promise<ChannelCount[]>;
  /** Deliveries created in the window, counted by creation-time bucket, channel and current status. */
  deliveryStats(query: StatsQuery): Promise<StatsRow[]>;

  findTokenByHash(tokenHash: string): Promise<ApiTokenRow | undefined>;
  insertToken(row: ApiTokenRow): Promise<void>;
  listTokens(): Promise<ApiTokenRow[]>;
  revokeToken(nameOrId: string, now: number): Promise<boolean>;
  touchToken(id: string, now: number): Promise<void>;

  ping(): Promise<boolean>;
  migrationsCurrent(): Promise<boolean>;
  close(): Promise<void>;
}
