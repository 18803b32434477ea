import { GraphQLError } from 'graphql';
import type { ChannelName, DeliveryRow } from '../../db/schema';
import { finalStatuses } from '../../delivery/events';
import { builder, type GraphQLContext } from '../builder';
import { ChannelEnum, DeliveryRef } from './delivery';

/**
 * An update of a delivery that arrives after a newer one of the same delivery was already sent (published just before
 * the subscription read, say).
 */
const isStale = (update: DeliveryRow, last: DeliveryRow) =>
  update.updatedAt < last.updatedAt ||
  (update.updatedAt === last.updatedAt && update.status === last.status && update.attempts === last.attempts);

/** How many deliveries' last updates a stream keeps to tell a late, older update from a new one. */
const rememberedDeliveries = 10_000;

/**
 * The updates a caller may see: after `current` (when subscribing by id), each change; by id the stream ends once
 * the delivery is final.
 */
async function* visibleUpdates(
  updates: AsyncGenerator<DeliveryRow>,
  first: Promise<IteratorResult<DeliveryRow>>,
  canRead: (delivery: DeliveryRow) => boolean,
  filter: { id?: string; channel?: ChannelName },
  current: DeliveryRow | undefined,
  stop: () => void,
  reauthenticate: () => Promise<boolean>,
): AsyncGenerator<DeliveryRow> {
  try {
    // The last update sent of each delivery, compared per delivery: by channel, updates of different deliveries
    // arrive in the order they were committed, not in the order of their timestamps. The oldest are forgotten first.
    const shown = new Map<string, DeliveryRow>();
    const remember = (delivery: DeliveryRow) => {
      shown.delete(delivery.id);
      shown.set(delivery.id, delivery);
      if (shown.size > rememberedDeliveries) shown.delete(shown.keys().next().value!);
    };
    if (current) {
      yield current;
      if (finalStatuses.has(current.status)) return;
      remember(current);
    }
    for (let step = await first; !step.done; step = await updates.next()) {
      const delivery = step.value;
      if (!canRead(delivery) || (filter.channel && delivery.channel !== filter.channel)) continue;
      const last = shown.get(delivery.id);
      if (last && isStale(delivery, last)) continue;
      // A token revoked while its stream is open sees nothing more.
      if (!(await reauthenticate())) return;
      remember(delivery);
      yield delivery;
      if (filter.id !== undefined && finalStatuses.has(delivery.status)) return;
    }
  } finally {
    stop();
  }
}

/**
 * Checks the caller and the delivery before the stream starts (so that a refusal is an ordinary GraphQL error), and
 * aborts the event listener as soon as the client leaves: a generator waiting for the next event would only see
 * `return()` after that event, which may never come.
 */
async function subscribeToDeliveries(
  context: GraphQLContext,
  filter: { id?: string; channel?: ChannelName },
): Promise<AsyncIterableIterator<DeliveryRow>> {
  const { caller } = context;
  if (caller.scopes.read === 'none') {
    throw new GraphQLError('This token may not read deliveries', { extensions: { code: 'FORBIDDEN' } });
  }
  const controller = new AbortController();
  const updates = context.events.updates(controller.signal, filter.id);
  // Starting the iterator listens now, so nothing published while the current state is read is lost.
  const first = updates.next();
  let current: DeliveryRow | undefined;
  if (filter.id !== undefined) {
    current = await context.service.getDelivery(filter.id, caller);
    if (!current || (filter.channel && current.channel !== filter.channel)) {
      controller.abort();
      await first;
      throw new GraphQLError(`No delivery ${filter.id}`, { extensions: { code: 'NOT_FOUND' } });
    }
  }
  const stop = () => controller.abort();
  const inner = visibleUpdates(
    updates,
    first,
    (delivery) => context.service.canRead(delivery, caller),
    filter,
    current,
    stop,
    context.reauthenticate,
  );
  const iterator: AsyncIterableIterator<DeliveryRow> = {
    next: () => inner.next(),
    return: async (value?: unknown) => {
      stop();
      return inner.return(value as never);
    },
    throw: async (error?: unknown) => {
      stop();
      return inner.throw(error);
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

builder.subscriptionField('deliveryUpdated', (t) =>
  t.field({
    type: DeliveryRef,
    description:
      'Live changes of deliveries this token may read, over server-sent events (Accept: text/event-stream) or ' +
      'WebSocket (graphql-ws, the token in connectionParams). With `id`: ' +
      'the delivery as it is now, then each change, and the stream ends once it is SENT, FAILED or CANCELLED. ' +
      'Without: every change (of `channel` when given) from now on.',
    args: {
      id: t.arg.id({ description: 'One delivery' }),
      channel: t.arg({ type: ChannelEnum, description: 'Only deliveries on this channel' }),
    },
    subscribe: (_root, args, context) =>
      subscribeToDeliveries(context, { id: args.id == null ? undefined : String(args.id), channel: args.channel ?? undefined }),
    resolve: (delivery) => delivery,
  }),
);
