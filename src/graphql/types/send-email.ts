import { builder } from '../builder';
import { sendMutation } from './send-mutation';

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

sendMutation('sendEmail', 'EMAIL', SendEmailInput);
