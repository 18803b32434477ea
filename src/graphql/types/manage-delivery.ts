import { builder } from '../builder';
import { DeliveryRef } from './delivery';
import { manageErrorTypes } from './errors';

builder.mutationFields((t) => ({
  cancelDelivery: t.field({
    type: DeliveryRef,
    description: 'Cancel a delivery that is QUEUED or RETRYING; the token must read it and may send on its channel',
    errors: { types: manageErrorTypes, directResult: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, context) => context.service.cancelDelivery(String(id), context.caller),
  }),
  retryDelivery: t.field({
    type: DeliveryRef,
    description: 'Send a FAILED delivery again; the token must read it and may send on its channel',
    errors: { types: manageErrorTypes, directResult: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, context) => context.service.retryDelivery(String(id), context.caller),
  }),
}));
