import type { ChannelCount } from '../../db/store';
import type { DeliveryQueue } from '../../delivery/service';
import { builder } from '../builder';
import { ChannelEnum } from './delivery';

const ChannelCountRef = builder.objectRef<ChannelCount>('ChannelCount').implement({
  fields: (t) => ({
    channel: t.field({ type: ChannelEnum, resolve: (row) => row.channel }),
    count: t.exposeInt('count'),
  }),
});

/** The queue as read, and when: the age is measured at the same instant for every field. */
interface QueueShape extends DeliveryQueue {
  readAt: number;
}

const DeliveryQueueRef = builder.objectRef<QueueShape>('DeliveryQueue').implement({
  description: 'What is waiting to be sent, across every caller',
  fields: (t) => ({
    depth: t.exposeInt('depth', { description: 'Deliveries not yet final (QUEUED, RETRYING, SENDING)' }),
    byChannel: t.field({
      type: [ChannelCountRef],
      description: 'The depth per channel, every channel listed (zeros included)',
      resolve: (queue) => queue.byChannel,
    }),
    oldestPendingAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Creation time of the oldest delivery not yet final; null when there is none',
      resolve: (queue) => (queue.oldestPendingAt === undefined ? null : new Date(queue.oldestPendingAt)),
    }),
    oldestPendingAgeSeconds: t.int({
      nullable: true,
      description: 'How long ago, in whole seconds, the oldest delivery not yet final was created; null when there is none',
      resolve: (queue) =>
        queue.oldestPendingAt === undefined ? null : Math.max(0, Math.floor((queue.readAt - queue.oldestPendingAt) / 1000)),
    }),
  }),
});

builder.queryField('deliveryQueue', (t) =>
  t.field({
    type: DeliveryQueueRef,
    description: 'The depth of the delivery queue, for operators: only tokens with read ALL (others get FORBIDDEN)',
    resolve: async (_root, _args, context) => ({ ...(await context.service.queue(context.caller)), readAt: Date.now() }),
  }),
);
