import type { InputObjectRef } from '@pothos/core';
import type { ChannelName } from '../../db/schema';
import { builder } from '../builder';
import { DeliveryRef } from './delivery';
import { sendErrorTypes } from './errors';

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

/**
 * The one send mutation of every channel: `name(input: <input>!)` answers the Delivery or one of the send errors, and
 * goes through `DeliveryService.send`, which validates the input with the channel's schema in delivery/inputs.ts.
 * Each channel keeps its input type in its own file and calls this once, e.g. `sendMutation('sendDing', 'DING', SendDingInput)`.
 */
export function sendMutation<T extends object>(name: string, channel: ChannelName, input: InputObjectRef<Types, T>): void {
  builder.mutationField(name, (t) =>
    t.field({
      type: DeliveryRef,
      errors: { types: sendErrorTypes, directResult: true },
      args: { input: t.arg({ type: input, required: true }) },
      resolve: (_root, args: unknown, context) =>
        context.service.send(channel, (args as { input: Record<string, unknown> }).input, context.caller, {
          idempotencyKey: context.idempotencyKey,
        }),
    }),
  );
}
