import { builder } from '../builder';
import { eraseRecipientErrorTypes } from './errors';

const RecipientErasureRef = builder.objectRef<{ erased: number }>('RecipientErasure').implement({
  fields: (t) => ({
    erased: t.exposeInt('erased', { description: 'Deliveries the recipient was in (0 when none)' }),
  }),
});

builder.mutationField('eraseRecipient', (t) =>
  t.field({
    type: RecipientErasureRef,
    description:
      "Erases one email address or mobile number (normalised as a send normalises it) from every delivery: their content is removed, the address is replaced by a random marker (erased:…) in the recipient, the attempts and the last error, waiting deliveries to it are cancelled; other addresses of a list stay. Admin tokens only. See the README's Data lifecycle.",
    errors: { types: eraseRecipientErrorTypes, directResult: true },
    args: { recipient: t.arg.string({ required: true }) },
    resolve: async (_root, { recipient }, context) => {
      const erased = await context.service.eraseRecipient(recipient, context.caller);
      // Never the address: the log would keep what the erasure removed.
      context.audit.info({ erased, by: context.caller.id }, 'recipient erased');
      return { erased };
    },
  }),
);
