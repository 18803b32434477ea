import { resolveCursorConnection, type ResolveCursorConnectionArgs } from '@pothos/plugin-relay';
import { GraphQLError } from 'graphql';
import type { DeliveryRow } from '../../db/schema';
import type { DeliveryCursor } from '../../db/store';
import { builder } from '../builder';
import { ChannelEnum, DeliveryRef, DeliveryStatusEnum } from './delivery';

export function encodeCursor(delivery: Pick<DeliveryRow, 'createdAt' | 'id'>): string {
  return Buffer.from(`${delivery.createdAt}:${delivery.id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): DeliveryCursor | undefined {
  if (cursor === undefined) return undefined;
  const match = /^(\d{1,16}):(dlv_[0-9a-f]{1,40})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw new GraphQLError('Invalid cursor', { extensions: { code: 'BAD_USER_INPUT' } });
  return { createdAt: Number(match[1]), id: match[2] };
}

builder.queryFields((t) => ({
  deliveries: t.connection(
    {
      type: DeliveryRef,
      description:
        'Deliveries this token may read, newest first (ties on createdAt by id). Keyset pagination: `first` and `last` default to 20 and are capped at 100 a page; follow `endCursor`/`startCursor` for more.',
      args: {
        channel: t.arg({ type: ChannelEnum }),
        status: t.arg({ type: DeliveryStatusEnum }),
        recipient: t.arg.string({ description: 'Exact recipient as shown on Delivery.recipient' }),
        createdAfter: t.arg({ type: 'DateTime', description: 'Only deliveries created strictly after this instant' }),
        createdBefore: t.arg({ type: 'DateTime', description: 'Only deliveries created strictly before this instant' }),
      },
      resolve: (_root, args, context) =>
        resolveCursorConnection(
          { args, toCursor: encodeCursor, defaultSize: 20, maxSize: 100 },
          ({ before, after, limit, inverted }: ResolveCursorConnectionArgs) =>
            context.service.listDeliveries(
              {
                channel: args.channel ?? undefined,
                status: args.status ?? undefined,
                recipient: args.recipient ?? undefined,
                createdAfter: args.createdAfter?.getTime(),
                createdBefore: args.createdBefore?.getTime(),
              },
              { after: decodeCursor(after), before: decodeCursor(before), limit, inverted },
              context.caller,
            ),
        ),
    },
    { name: 'DeliveryConnection' },
    { name: 'DeliveryEdge' },
  ),
  delivery: t.field({
    type: DeliveryRef,
    nullable: true,
    description: 'One delivery by id, or null when there is none this token may read',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, context) => context.service.getDelivery(String(id), context.caller).then((row) => row ?? null),
  }),
}));
