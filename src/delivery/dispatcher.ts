import { ChannelError, type Channels, type PacingRule, type SendResult } from '../channels/channel';
import type { Config } from '../config';
import type { DeliveryRow } from '../db/schema';
import { StoreUnavailableError } from '../errors';
import type { DeliveryPatch, NewAttempt, Store } from '../db/store';
import type { Digests, Fold } from '../digest/digests';
import type { Logger } from '../logger';
import type { SecretBox } from '../secrets';
import type { DeliveryEvents } from './events';
import { messageFromStored } from './inputs';
import { pacingTurn } from './pacing';

export interface DispatcherDeps {
  store: Store;
  channels: Channels;
  secretBox: SecretBox;
  events: DeliveryEvents;
  logger: Logger;
  config: Pick<Config, 'dispatch' | 'providerTimeoutMs'>;
  now?: () => number;
  random?: () => number;
  /** Alert-storm digests for paced robot channels (ROBOT_DIGEST); without, every message goes alone. */
  digests?: Digests;
}

/** When an attempt's signal aborts: channels time out on their own at PROVIDER_TIMEOUT_MS, this is the backstop. */
export function attemptDeadlineMs(config: Pick<Config, 'providerTimeoutMs'>): number {
  return config.providerTimeoutMs + 1000;
}

/** How often the dispatcher looks for claims that ran out (a replica died, say). */
const lapsedCheckMs = 1000;

/** The longest pause between claim cycles (or tries to record an outcome) while the database cannot be used. */
const storeBackoffCapMs = 5000;

/** How long a channel gets to wind down after the abort before the dispatcher stops waiting for it. */
export const abortGraceMs = 2000;

function healSignal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

export interface AttemptObserver {
  (event: { delivery: DeliveryRow; attempt: NewAttempt }): void;
}

/**
 * Sends what is due. Each delivery is claimed (SENDING with a lease) before it is sent, every attempt is recorded,
 * and retryable failures are rescheduled with exponential backoff and jitter.
 */
export class Dispatcher {
  /** Attempts not finished yet, recording their outcome included (what stop() waits for). */
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Deliveries being sent: what DISPATCH_CONCURRENCY bounds. A slot frees once the send is over, so the next claim
   * can join the same group commit as the outcome's record instead of waiting for it. */
  private readonly sending = new Set<string>();
  /** Since when claim cycles fail (the database is unreachable, say), while they do. */
  private failingSince?: number;
  /** Claim cycles failed in a row, and no cycle before this time: the pause doubles with each, up to a cap. */
  private failedCycles = 0;
  private pausedUntil = Number.NEGATIVE_INFINITY;
  /** Resolved (and replaced) when the store heals: outcomes waiting to be recorded try again at once. */
  private storeHealed = healSignal();
  /** When lapsed claims were last looked for. */
  private lapsedCheckedAt = Number.NEGATIVE_INFINITY;
  private timer?: NodeJS.Timeout;
  private cycling = false;
  /** The claim cycle under way (or the last one): stop() lets it hand out what it claimed before waiting. */
  private cycleDone: Promise<void> = Promise.resolve();
  private again = false;
  private stopping = false;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly observers: AttemptObserver[] = [];

  constructor(private readonly deps: DispatcherDeps) {
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
  }

  get running(): boolean {
    return this.timer !== undefined && !this.stopping;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  onAttempt(observer: AttemptObserver): void {
    this.observers.push(observer);
  }

  start(): void {
    if (this.timer) return;
    this.stopping = false;
    this.timer = setInterval(() => this.kick(), this.deps.config.dispatch.pollMs);
    this.timer.unref();
    this.kick();
  }

  /** Runs a claim cycle soon; calls while one runs coalesce into one more. */
  kick(): void {
    // Not started (or stopped): sends stay QUEUED until start().
    if (this.stopping || !this.timer) return;
    if (this.now() < this.pausedUntil) return;
    if (this.cycling) {
      this.again = true;
      return;
    }
    this.cycling = true;
    // A microtask, not the next turn: the claim then joins the writes (an outcome, say) of this turn in one commit.
    this.cycleDone = Promise.resolve().then(() => this.cycle());
  }

  /** The store takes writes again: claim at once, and record the outcomes that could not be. */
  resume(): void {
    this.failedCycles = 0;
    this.pausedUntil = Number.NEGATIVE_INFINITY;
    this.storeHealed.resolve();
    this.storeHealed = healSignal();
    this.kick();
  }

  /** Exponential from the poll interval, capped: how long to leave a failing store alone after `failures` in a row. */
  private storeBackoff(failures: number): number {
    return Math.min(storeBackoffCapMs, this.deps.config.dispatch.pollMs * 2 ** Math.min(failures - 1, 16));
  }

  private sendOver(deliveryId: string): void {
    if (this.sending.delete(deliveryId)) this.kick();
  }

  /** Stops claiming and waits for the attempts under way, at most `deadlineMs`. True when all finished. */
  async stop(deadlineMs: number): Promise<boolean> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), deadlineMs);
    });
    // A claim committed while stopping still starts its attempts: they are waited for like the others.
    const drained = this.cycleDone.then(() => Promise.allSettled([...this.inFlight.values()])).then(() => true);
    const finished = await Promise.race([drained, deadline]);
    clearTimeout(timer);
    return finished;
  }

  private async cycle(): Promise<void> {
    try {
      do {
        this.again = false;
        const room = this.deps.config.dispatch.concurrency - this.sending.size;
        if (room <= 0 || this.stopping) break;
        const now = this.now();
        if (now - this.lapsedCheckedAt >= lapsedCheckMs) {
          this.lapsedCheckedAt = now;
          await this.release('lapsed');
        }
        const claimed = await this.deps.store.claimDue(now, room, now + this.deps.config.dispatch.claimLeaseMs);
        for (const delivery of claimed) {
          this.sending.add(delivery.id);
          const attempt = this.attempt(delivery)
            .catch((error: unknown) => this.deps.logger.error({ err: error, deliveryId: delivery.id }, 'attempt failed'))
            .finally(() => {
              this.inFlight.delete(delivery.id);
              this.sending.delete(delivery.id);
              this.kick();
            });
          this.inFlight.set(delivery.id, attempt);
        }
        if (claimed.length === room) this.again = true;
        if (this.failingSince !== undefined) {
          this.deps.logger.info({ failedForMs: this.now() - this.failingSince }, 'dispatching again: the database answers');
          this.failingSince = undefined;
        }
        this.failedCycles = 0;
      } while (this.again && !this.stopping);
    } catch (error) {
      // Tried again after a pause that grows while the database stays unusable; one line for the whole episode.
      this.failedCycles += 1;
      this.pausedUntil = this.now() + this.storeBackoff(this.failedCycles);
      if (this.failingSince === undefined) {
        this.failingSince = this.now();
        this.deps.logger.error({ err: error }, 'dispatch cycle failed; retrying with backoff');
      }
    } finally {
      this.cycling = false;
    }
  }

  private async attempt(delivery: DeliveryRow): Promise<void> {
    const { store, events, logger } = this.deps;
    // The delivery's fields on each line it logs (a child logger per attempt would cost more than the lines).
    const about = { deliveryId: delivery.id, channel: delivery.channel, provider: delivery.provider };
    events.publish(delivery);

    const number = delivery.attempts + 1;
    const channel = this.deps.channels[delivery.channel];
    if (channel.pacing) {
      const slot = await this.takePacingSlot(delivery, number, channel.pacing).catch((error: unknown) => {
        // Not sent: the claim lapses and the delivery is taken again (counted as an interrupted attempt).
        logger.error({ ...about, err: error, attempt: number }, 'could not check the pacing of this recipient; not sent');
        return false;
      });
      if (!slot) return;
    }

    let startedAt = this.now();
    let result: SendResult | undefined;
    let failure: ChannelError | undefined;
    const controller = new AbortController();
    let settled = false;
    let giveUp: NodeJS.Timeout | undefined;
    let abandon!: (error: ChannelError) => void;
    let fold: Fold<unknown> | undefined;
    // A channel that ignores the signal still ends inside the claim's lease; one that honours it decides the outcome
    // (an answer that arrived is not thrown away: giving up on a send the provider took makes a duplicate).
    const abandoned = new Promise<never>((_resolve, reject) => (abandon = reject));
    // setImmediate: after a busy stretch of the event loop, replies already received are read before the abort.
    const timeout = setTimeout(
      () =>
        setImmediate(() => {
          if (settled) return;
          controller.abort();
          giveUp = setTimeout(() => abandon(new ChannelError('retryable', 'TIMEOUT', 'The provider did not answer in time')), abortGraceMs);
        }),
      attemptDeadlineMs(this.deps.config),
    );
    try {
      const secrets = delivery.sealedSecrets
        ? this.deps.secretBox.open<Record<string, unknown>>(delivery.sealedSecrets)
        : null;
      const message = messageFromStored(JSON.parse(delivery.payload) as Record<string, unknown>, secrets);
      fold = await this.foldDigest(delivery, channel, message);
      // The robot counts the message when it arrives: a fold's time (a transaction, a render) must not make the
      // attempt look older than it is to the pacing window.
      if (fold) startedAt = this.now();
      result = await Promise.race([
        channel.send((fold?.message ?? message) as never, { deliveryId: delivery.id, attempt: number, signal: controller.signal }),
        abandoned,
      ]);
    } catch (error) {
      if (error instanceof ChannelError) {
        failure = error;
      } else {
        logger.error({ ...about, err: error }, 'channel threw an unexpected error');
        failure = new ChannelError('retryable', 'INTERNAL', 'unexpected error in the gateway while sending');
      }
    } finally {
      settled = true;
      clearTimeout(timeout);
      clearTimeout(giveUp);
    }
    this.sendOver(delivery.id);

    const finishedAt = this.now();
    const attempt: NewAttempt = {
      number,
      startedAt,
      durationMs: Math.max(0, finishedAt - startedAt),
      outcome: failure ? (failure.kind === 'permanent' ? 'PERMANENT' : failure.kind === 'rate_limited' ? 'RATE_LIMITED' : 'RETRYABLE') : 'SENT',
      providerCode: failure?.code ?? null,
      providerMessage: failure?.message ?? result?.note ?? null,
    };
    const patch = this.outcome(delivery, number, finishedAt, result, failure);
    try {
      const updated = await this.record(delivery, attempt, patch);
      events.publish(updated);
      for (const observer of this.observers) observer({ delivery: updated, attempt });
      if (fold) await this.deps.digests!.settle(updated, updated.status === 'SENT', finishedAt);
      if (failure) {
        logger.warn(
          { ...about, attempt: number, status: updated.status, code: failure.code, nextAttemptAt: updated.nextAttemptAt },
          failure.message,
        );
      } else {
        logger.info({ ...about, attempt: number, providerMessageId: updated.providerMessageId }, 'delivery sent');
      }
    } catch (error) {
      // Not recorded: the claim lapses and the delivery is attempted again (at-least-once); a pacing reservation
      // keeps counting until then, as the attempt most likely reached the provider.
      logger.error({ ...about, err: error, attempt: number }, 'could not record the attempt');
    }
  }

  /**
   * Records the attempt's outcome. While the database cannot be used the outcome is kept here and tried again (sooner
   * when the store heals) as long as the claim holds: sending the message again would make a duplicate. Past the claim
   * it is given up, and the delivery is handed back as an interrupted attempt (at-least-once).
   */
  private async record(delivery: DeliveryRow, attempt: NewAttempt, patch: DeliveryPatch): Promise<DeliveryRow> {
    const claimedUntil = delivery.claimedUntil ?? undefined;
    for (let failures = 1; ; failures++) {
      try {
        if (failures > 1) {
          // A commit whose fsync failed is in the database all the same: recorded already, not to be recorded twice.
          const current = await this.deps.store.getDelivery(delivery.id);
          if (current && current.attempts >= attempt.number) return current;
        }
        return await this.deps.store.finishAttempt(delivery.id, attempt, patch, claimedUntil);
      } catch (error) {
        const pause = this.storeBackoff(failures);
        const lapses = claimedUntil ?? Number.NEGATIVE_INFINITY;
        if (!(error instanceof StoreUnavailableError) || this.stopping || this.now() + pause >= lapses) throw error;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([this.storeHealed.promise, new Promise((resolve) => (timer = setTimeout(resolve, pause)))]);
        clearTimeout(timer);
      }
    }
  }

  /** The digest this attempt carries instead of its own message, if its robot has a backlog (see src/digest/). */
  private async foldDigest(delivery: DeliveryRow, channel: Channels[keyof Channels], message: unknown): Promise<Fold<unknown> | undefined> {
    if (!this.deps.digests || !channel.digest) return undefined;
    try {
      return await this.deps.digests.fold(delivery, channel, message, this.now());
    } catch (error) {
      // Nothing was folded (the fold is one transaction): the message goes alone.
      this.deps.logger.error({ err: error, deliveryId: delivery.id }, 'could not fold a digest; sending the message alone');
      return undefined;
    }
  }

  /**
   * Hands claimed deliveries back to the queue with an INTERRUPTED attempt: at start, every claim when this process is
   * the database's only user (they were caught by a crash), else only lapsed ones; then now and again, lapsed ones
   * (a replica that died leaves its claims to run out, and they move on here).
   */
  async release(which: 'all' | 'lapsed' = this.deps.store.shared ? 'lapsed' : 'all'): Promise<number> {
    const released = await this.deps.store.releaseClaims(this.now(), this.deps.config.dispatch.maxAttempts, which);
    for (const delivery of released) this.deps.events.publish(delivery);
    if (released.length > 0) {
      this.deps.logger.warn(
        { released: released.length, deliveryIds: released.slice(0, 20).map((delivery) => delivery.id) },
        which === 'all' ? 'picked up deliveries caught mid-attempt by the last stop' : 'picked up deliveries whose claim ran out',
      );
    }
    return released.length;
  }

  /**
   * A slot for this attempt within the recipient's pacing, or false after sending the delivery back to wait for its
   * turn. A delivery that was given a turn before (or a retry time) keeps its place among the waiting ones.
   */
  private async takePacingSlot(delivery: DeliveryRow, number: number, pacing: PacingRule): Promise<boolean> {
    const now = this.now();
    const previousTurn =
      delivery.nextAttemptAt !== null && delivery.nextAttemptAt > delivery.createdAt ? delivery.nextAttemptAt : undefined;
    const outcome = await this.deps.store.reservePacingSlot(
      {
        channel: delivery.channel,
        recipient: delivery.recipient,
        deliveryId: delivery.id,
        number,
        now,
        windowMs: pacing.windowMs,
        longestAttemptMs: this.deps.config.dispatch.claimLeaseMs,
        muteMs: pacing.muteMs,
        expiresAt: delivery.claimedUntil ?? now + this.deps.config.dispatch.claimLeaseMs,
      },
      (window) => pacingTurn(pacing, window, now, previousTurn),
    );
    if (outcome.reserved) return true;
    if (outcome.delivery) this.deps.events.publish(outcome.delivery);
    this.deps.logger.debug(
      { deliveryId: delivery.id, channel: delivery.channel, nextAttemptAt: outcome.turn },
      'recipient at its pacing limit; delivery waits its turn',
    );
    return false;
  }

  private outcome(
    delivery: DeliveryRow,
    number: number,
    now: number,
    result: SendResult | undefined,
    failure: ChannelError | undefined,
  ): DeliveryPatch {
    const base: DeliveryPatch = { attempts: number, claimedUntil: null };
    if (!failure) {
      return {
        ...base,
        status: 'SENT',
        sentAt: now,
        nextAttemptAt: null,
        providerMessageId: result?.providerMessageId ?? null,
        lastErrorCode: result?.note ? 'PARTIALLY_REJECTED' : null,
        lastErrorMessage: result?.note ?? null,
        sealedSecrets: null,
      };
    }
    const lastError = { lastErrorCode: failure.code, lastErrorMessage: failure.message };
    const failed: DeliveryPatch = { ...base, ...lastError, status: 'FAILED', nextAttemptAt: null, sealedSecrets: null };
    if (failure.kind === 'permanent') return failed;
    // A provider's per-number limit on a verification code is final: a late code is worse than none.
    if (failure.kind === 'rate_limited' && delivery.channel === 'SMS') return failed;
    const { maxAttempts, maxAgeMs } = this.deps.config.dispatch;
    const nextAttemptAt = now + Math.max(this.backoff(number), failure.retryAfterMs ?? 0);
    if (number >= maxAttempts || nextAttemptAt - delivery.createdAt > maxAgeMs) return failed;
    return { ...base, ...lastError, status: 'RETRYING', nextAttemptAt };
  }

  /** Exponential backoff with "equal jitter": half fixed, half random. */
  backoff(attempt: number): number {
    const { baseDelayMs, maxDelayMs } = this.deps.config.dispatch;
    const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }
}
