import { builder } from '../builder';
import { DeliveryRef } from './delivery';
import { sendErrorTypes } from './errors';

const SendEmailInput = builder.inputType('SendEmailInput', {
  fields: (t) => ({
    to: t.stringList({ required: true }),
    cc: t.stringList(),
    bcc: t.stringList(),
    subject: t.string(),
    content: t.string({ required: true, description: 'Plain-text body' }),
    html: t.string({ description: 'Optional HTML alternative' }),
    idempotencyKey: t.string({ description: 'Same key and payload return the original delivery' }),
    wait: t.boolean({ description: 'Wait for the first attempt (default true)' }),
  }),
});

builder.mutationField('sendEmail', (t) =>
  t.field({
    type: DeliveryRef,
    errors: { types: sendErrorTypes, directResult: true },
    args: { input: t.arg({ type: SendEmailInput, required: true }) },
    resolve: (_root, { input }, context) =>
      context.service.sendEmail(input, context.caller, { idempotencyKey: context.idempotencyKey }),
  }),
);
