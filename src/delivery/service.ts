import crypto from 'node:crypto';
import { isAdmin } from '../api-tokens';
import type { Caller } from '../auth';
import type { Channels } from '../channels/channel';
import type { Config } from '../config';
import { channels, type ChannelName, type DeliveryRow, type NewDeliveryRow } from '../db/schema';
import type { ChannelCount, DeliveryFilter, KeysetPage, StatsQuery, StatsRow, Store } from '../db/store';
import {
  ForbiddenError,
  IdempotencyConflictError,
  InvalidStateError,
  NotFoundError,
  StoreUnavailableError,
  ValidationError,
} from '../errors';
import type { SecretBox } from '../secrets';
import type { Dispatcher } from './dispatcher';
import { erasureRequest } from './erasure';
import { finalStatuses, type DeliveryEvents } from './events';
import { idempotencyKey as idempotencyKeySchema, normaliseRecipientFilter, prepareByChannel } from './inputs';
import { rateLimitedError, sendLimits } from './rate-limits';

export interface SendOptions {
  /** From the Idempotency-Key header; an `idempotencyKey` in the input wins. */
  idempotencyKey?: string;
  /** Wait for the first attempt (up to SEND_WAIT_MS). */
  wait?: boolean;
}

export interface DeliveryServiceDeps {
  store: Store;
  channels: Channels;
  dispatcher: Dispatcher;
  events: DeliveryEvents;
  secretBox: SecretBox;
  config: Pick<Config, 'sendWaitMs' | 'sms' | 'rateLimitPerTokenPerMinute'>;
  /** Told of every delivery recorded and every send refused by a limit (metrics). */
  observer?: SendObserver;
  now?: () => number;
}

export interface SendObserver {
  accepted(delivery: DeliveryRow): void;
  rateLimited(channel: ChannelName, scope: 'recipient' | 'caller'): void;
}

/** Delivery ids sort by creation time: 12 hex digits of milliseconds, then randomness. */
// crypto.randomBytes per id is one getrandom call each (3% of an accepted request, measured): the random part comes
// from a buffer refilled 512 ids at a time instead, just as random.
const idEntropy = Buffer.alloc(8 * 512);
let idEntropyUsed = idEntropy.length;

export function newDeliveryId(now: number): string {
  if (idEntropyUsed === idEntropy.length) {
    crypto.randomFillSync(idEntropy);
    idEntropyUsed = 0;
  }
  const random = idEntropy.toString('hex', idEntropyUsed, idEntropyUsed + 8);
  idEntropyUsed += 8;
  return `dlv_${now.toString(16).padStart(12, '0')}${random}`;
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${stableJson((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface DeliveryQueue {
  depth: number;
  /** Every channel, zeros included. */
  byChannel: ChannelCount[];
  /** Creation time of the oldest delivery not final yet. */
  oldestPendingAt?: number;
}

/** A DingTalk or SMS delivery that failed has had its robot credentials or code erased: it cannot be sent again. */
const erased = (delivery: DeliveryRow) => delivery.channel !== 'EMAIL' && delivery.sealedSecrets == null;

/** The one path every API layer takes: validate, check limits, record, hand to the dispatcher, report. */
export class DeliveryService {
  private readonly now: () => number;
  private waitingStopped = false;
  private releaseWaiting!: () => void;
  private readonly waitingReleased = new Promise<void>((resolve) => (this.releaseWaiting = resolve));

  constructor(private readonly deps: DeliveryServiceDeps) {
    this.now = deps.now ?? Date.now;
  }

  /**
   * For a stop: requests waiting for a first attempt are answered now (QUEUED, already committed) and new ones do not
   * wait, since no new attempt starts. Otherwise their connections would be cut at the stop without an answer.
   */
  stopWaiting(): void {
    this.waitingStopped = true;
    this.releaseWaiting();
  }

  /** The one send path of every channel and API layer (GraphQL `sendMutation`, the legacy REST routes). */
  async send(
    channel: ChannelName,
    input: Record<string, unknown>,
    caller: Caller,
    options: SendOptions = {},
  ): Promise<DeliveryRow> {
    const { idempotencyKey: keyInInput, wait: waitInInput, ...fields } = input;
    if (!caller.scopes.channels.includes(channel)) {
      throw new ForbiddenError(`This token may not send on ${channel}`);
    }
    const key = this.idempotencyKey(keyInInput ?? options.idempotencyKey);
    const prepared = prepareByChannel[channel](fields);
    await (this.deps.channels[channel] as Channels[ChannelName]).validate?.(prepared.message as never);
    const { store, secretBox, dispatcher, events } = this.deps;
    const now = this.now();
    const requestHash = key ? secretBox.digest(`${channel}:${stableJson(prepared.message)}`) : null;
    const row: NewDeliveryRow = {
      id: newDeliveryId(now),
      channel,
      status: 'QUEUED',
      provider: this.deps.channels[channel].provider,
      recipient: prepared.recipient,
      payload: JSON.stringify(prepared.payload),
      sealedSecrets: prepared.secrets ? secretBox.seal(prepared.secrets) : null,
      callerId: caller.id,
      idempotencyKey: key ?? null,
      requestHash,
      nextAttemptAt: now,
      createdAt: now,
      updatedAt: now,
    };
    // Listeners hear of the new delivery as QUEUED before any claim of it (events.hold).
    const held = events.hold(row.id);
    const outcome = await store.insertDelivery(row, sendLimits(this.deps.config, channel)).catch((error: unknown) => {
      held.release();
      throw error;
    });
    if (outcome.kind !== 'created') held.release();
    if (outcome.kind === 'limited') {
      this.deps.observer?.rateLimited(channel, outcome.limit.scope ?? 'recipient');
      throw rateLimitedError(outcome.limit, outcome.retryAfterMs);
    }
    if (outcome.kind === 'existing') {
      if (outcome.delivery.requestHash !== requestHash || outcome.delivery.channel !== channel) {
        throw new IdempotencyConflictError(key!);
      }
      return outcome.delivery;
    }
    held.publish(outcome.delivery);
    this.deps.observer?.accepted(outcome.delivery);
    const wait = (waitInInput ?? options.wait ?? true) !== false && this.deps.config.sendWaitMs > 0 && !this.waitingStopped;
    if (!wait) {
      dispatcher.kick();
      return outcome.delivery;
    }
    const waiter = events.waitFor(
      outcome.delivery.id,
      (delivery) => delivery.attempts > 0 || finalStatuses.has(delivery.status) || delivery.status === 'QUEUED' && delivery.nextAttemptAt! > now,
      this.deps.config.sendWaitMs,
    );
    dispatcher.kick();
    await Promise.race([waiter.promise, this.waitingReleased]);
    waiter.cancel();
    // Recorded already: a database that cannot be read now must not turn the acceptance into a refusal.
    const latest = await store.getDelivery(outcome.delivery.id).catch((error: unknown) => {
      if (error instanceof StoreUnavailableError) return undefined;
      throw error;
    });
    return latest ?? outcome.delivery;
  }

  async getDelivery(id: string, caller: Caller): Promise<DeliveryRow | undefined> {
    const delivery = await this.deps.store.getDelivery(id);
    return delivery && this.canRead(delivery, caller) ? delivery : undefined;
  }

  /** The deliveries a digest carried (its carrier first among equals, oldest first) that this caller may read. */
  async listFolded(carrierId: string, caller: Caller): Promise<DeliveryRow[]> {
    return (await this.deps.store.listFolded(carrierId)).filter((row) => this.canRead(row, caller));
  }

  async getDeliveries(ids: readonly string[], caller: Caller): Promise<(DeliveryRow | undefined)[]> {
    const rows = await this.deps.store.getDeliveries(ids);
    const byId = new Map(rows.filter((row) => this.canRead(row, caller)).map((row) => [row.id, row]));
    return ids.map((id) => byId.get(id));
  }

  async listDeliveries(filter: DeliveryFilter, page: KeysetPage, caller: Caller): Promise<DeliveryRow[]> {
    if (caller.scopes.read === 'none') throw new ForbiddenError('This token may not read deliveries');
    const normalised = filter.recipient === undefined ? filter : { ...filter, recipient: normaliseRecipientFilter(filter.recipient) };
    const scoped = caller.scopes.read === 'own' ? { ...normalised, callerId: caller.id } : normalised;
    return this.deps.store.listDeliveries(scoped, page);
  }

  async listAttempts(deliveryId: string) {
    return this.deps.store.listAttempts(deliveryId);
  }

  /** Counts for dashboards, over the deliveries this caller may read. */
  async deliveryStats(query: Omit<StatsQuery, 'callerId'>, caller: Caller): Promise<StatsRow[]> {
    if (caller.scopes.read === 'none') throw new ForbiddenError('This token may not read deliveries');
    return this.deps.store.deliveryStats({ ...query, callerId: caller.scopes.read === 'own' ? caller.id : undefined });
  }

  /** How many deliveries wait, by channel, and since when: for operators, so only for tokens that read everything. */
  async queue(caller: Caller): Promise<DeliveryQueue> {
    if (caller.scopes.read !== 'all') throw new ForbiddenError('Only a token that may read every delivery may see the queue');
    const [counts, oldest] = await Promise.all([this.deps.store.countPending(), this.deps.store.oldestPendingCreatedAt()]);
    const byChannel = channels.map((channel) => ({
      channel,
      count: Number(counts.find((row) => row.channel === channel)?.count ?? 0),
    }));
    return {
      depth: byChannel.reduce((total, row) => total + row.count, 0),
      byChannel,
      oldestPendingAt: oldest == null ? undefined : Number(oldest),
    };
  }

  /**
   * Erases one email address or mobile number from every delivery (see `Store.eraseRecipient`): admin tokens only.
   * Returns how many deliveries it was in.
   */
  async eraseRecipient(recipient: string, caller: Caller): Promise<number> {
    if (!isAdmin(caller.scopes)) throw new ForbiddenError('Only a token with every channel and read ALL may erase a recipient');
    return this.deps.store.eraseRecipient(erasureRequest(recipient, this.now()));
  }

  /** Stops a delivery that has not been sent yet. */
  async cancelDelivery(id: string, caller: Caller): Promise<DeliveryRow> {
    await this.requireManageable(id, caller);
    const cancelled = await this.deps.store.transition(id, ['QUEUED', 'RETRYING'], {
      status: 'CANCELLED',
      nextAttemptAt: null,
      sealedSecrets: null,
    });
    if (!cancelled) throw new InvalidStateError('Only a QUEUED or RETRYING delivery can be cancelled');
    this.deps.events.publish(cancelled);
    return cancelled;
  }

  /** Sends a FAILED delivery again, as long as what it needs to be sent was not erased. */
  async retryDelivery(id: string, caller: Caller): Promise<DeliveryRow> {
    const current = await this.requireManageable(id, caller);
    if (current.status === 'FAILED' && current.contentRedactedAt != null) {
      throw new InvalidStateError('Its content was removed (content retention or an erasure); send a new message instead');
    }
    if (current.status === 'FAILED' && erased(current)) {
      throw new InvalidStateError('Its credentials or code were erased when it failed; send a new message instead');
    }
    // Due again once committed: listeners hear of it as QUEUED before any claim of it (events.hold).
    const held = this.deps.events.hold(id);
    const retried = await this.deps.store
      .transition(id, ['FAILED'], { status: 'QUEUED', nextAttemptAt: this.now() })
      .catch((error: unknown) => {
        held.release();
        throw error;
      });
    if (!retried) {
      held.release();
      throw new InvalidStateError('Only a FAILED delivery can be retried');
    }
    held.publish(retried);
    this.deps.dispatcher.kick();
    return retried;
  }

  private async requireManageable(id: string, caller: Caller): Promise<DeliveryRow> {
    const delivery = await this.deps.store.getDelivery(id);
    if (!delivery || !this.canRead(delivery, caller)) throw new NotFoundError(`No delivery ${id}`);
    if (!this.canManage(delivery, caller)) {
      throw new ForbiddenError(`This token may not cancel or retry deliveries on ${delivery.channel}`);
    }
    return delivery;
  }

  /** The one read rule: `all` reads every delivery, `own` those it sent, `none` nothing. */
  canRead(delivery: DeliveryRow, caller: Caller): boolean {
    return caller.scopes.read === 'all' || (caller.scopes.read === 'own' && delivery.callerId === caller.id);
  }

  /**
   * The one rule for cancelling and retrying: the token reads the delivery and may send on its channel. Cancelling or
   * retrying decides whether a message goes out, so a read-only token (no channels) may look but not touch.
   */
  canManage(delivery: DeliveryRow, caller: Caller): boolean {
    return this.canRead(delivery, caller) && caller.scopes.channels.includes(delivery.channel);
  }

  /** Whether `retryDelivery` would accept this delivery from this caller now. */
  canRetry(delivery: DeliveryRow, caller: Caller): boolean {
    return delivery.status === 'FAILED' && !erased(delivery) && delivery.contentRedactedAt == null && this.canManage(delivery, caller);
  }

  /** Whether `cancelDelivery` would accept this delivery from this caller now. */
  canCancel(delivery: DeliveryRow, caller: Caller): boolean {
    return (delivery.status === 'QUEUED' || delivery.status === 'RETRYING') && this.canManage(delivery, caller);
  }

  private idempotencyKey(value: unknown): string | undefined {
    if (value == null) return undefined;
    const parsed = idempotencyKeySchema.safeParse(value);
    if (!parsed.success) {
      throw new ValidationError(parsed.error.issues.map((issue) => ({ path: 'idempotencyKey', message: issue.message })));
    }
    return parsed.data;
  }
}
