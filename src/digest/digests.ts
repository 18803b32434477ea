import type { Channel, ChannelDigest, PacingRule } from '../channels/channel';
import type { DeliveryRow } from '../db/schema';
import type { Store } from '../db/store';
import type { DeliveryEvents } from '../delivery/events';
import type { Logger } from '../logger';
import { renderDigest, type DigestEntry } from './render';

/** At most this many waiting deliveries are read for one digest message (more never fit in a robot's message). */
const readLimit = 2000;

/** A digest about to go out: the message that carries it and the deliveries it folds (the carrier's own excluded). */
export interface Fold<M> {
  message: M;
  folded: DeliveryRow[];
}

export interface DigestsDeps {
  store: Store;
  events: DeliveryEvents;
  logger: Logger;
}

/**
 * Alert-storm digests for paced robot channels. When an attempt has its robot's pacing slot and more deliveries wait
 * for that robot than its pace lets out in the next minute, the slot carries one digest message folding the waiting
 * ones, oldest first, as many as fit in one message under the provider's size limit (the next slot carries the
 * next message, so each message of a long digest keeps to the pace). The fold is decided inside the store's
 * transaction: no other replica folds or claims the same deliveries. The dispatcher calls `fold` before sending and
 * `settle` once the carrier's attempt is recorded.
 */
export class Digests {
  constructor(private readonly deps: DigestsDeps) {}

  /** The digest this attempt carries, or undefined to send the carrier's own message alone. */
  async fold<M>(carrier: DeliveryRow, channel: Channel, message: M, now: number): Promise<Fold<M> | undefined> {
    const digest = channel.digest as ChannelDigest<M> | undefined;
    const pacing: PacingRule | undefined = channel.pacing;
    if (!digest || !pacing || carrier.claimedUntil === null) return undefined;
    const own = digest.entry(JSON.parse(carrier.payload) as Partial<M>, carrier.createdAt);
    if (!own) return undefined;
    let chosen: DigestEntry[] = [];
    const folded = await this.deps.store.foldDigest(
      {
        channel: carrier.channel,
        recipient: carrier.recipient,
        carrierId: carrier.id,
        claimedUntil: carrier.claimedUntil,
        now,
        threshold: pacing.perWindow,
        limit: readLimit,
      },
      (waiting) => {
        const picked = pick(digest, message, own, waiting);
        chosen = picked.entries;
        return picked.ids;
      },
    );
    if (folded.length === 0) return undefined;
    for (const delivery of folded) this.deps.events.publish(delivery);
    return { message: digest.build(message, renderDigest(digest.family, chosen)), folded };
  }

  /** After the carrier's attempt is recorded: its folded deliveries are SENT, or back in the queue if it was not sent. */
  async settle(carrier: DeliveryRow, sent: boolean, now: number): Promise<void> {
    const settled = await this.deps.store.settleDigest(carrier.id, sent, now);
    for (const delivery of settled) this.deps.events.publish(delivery);
    this.deps.logger.info(
      { deliveryId: carrier.id, channel: carrier.channel, folded: settled.length, sent },
      sent ? 'digest sent' : 'digest not sent; its folded deliveries wait again',
    );
  }
}

/**
 * The waiting deliveries that go into this message: the longest prefix (oldest first) of those that can be folded
 * such that the digest, carrier's own message included, fits in one provider message. Sizes grow with the prefix,
 * so a binary search over its length renders the digest O(log n) times.
 */
export function pick<M>(
  digest: ChannelDigest<M>,
  carrierMessage: M,
  own: DigestEntry,
  waiting: readonly DeliveryRow[],
): { ids: string[]; entries: DigestEntry[] } {
  const candidates: { id: string; entry: DigestEntry }[] = [];
  for (const delivery of waiting) {
    const entry = digest.entry(JSON.parse(delivery.payload) as Partial<M>, delivery.createdAt);
    if (entry) candidates.push({ id: delivery.id, entry });
  }
  const entriesOf = (count: number) => [own, ...candidates.slice(0, count).map((candidate) => candidate.entry)].sort((a, b) => a.at - b.at);
  const fits = (count: number) => digest.size(digest.build(carrierMessage, renderDigest(digest.family, entriesOf(count)))) <= digest.maxBytes;
  let low = 0;
  let high = candidates.length;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (fits(middle)) low = middle;
    else high = middle - 1;
  }
  // A digest of the carrier alone is no digest.
  if (low === 0 || !fits(low)) return { ids: [], entries: [] };
  return { ids: candidates.slice(0, low).map((candidate) => candidate.id), entries: entriesOf(low) };
}
