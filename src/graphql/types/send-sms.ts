import { builder } from '../builder';
import { sendMutation } from './send-mutation';

const SendSmsInput = builder.inputType('SendSmsInput', {
  fields: (t) => ({
    mobile: t.string({ required: true, description: 'E.164, or 11 digits for mainland China' }),
    content: t.string({ required: true, description: 'Fills the template parameter (the verification code)' }),
    template: t.string({ description: 'Provider template id; the configured one by default' }),
    params: t.field({ type: 'JSON', description: 'Template parameters by name; overrides content' }),
    idempotencyKey: t.string({ description: 'Same key and payload return the original delivery' }),
    wait: t.boolean({ description: 'Wait for the first attempt (default true)' }),
  }),
});

sendMutation('sendSms', 'SMS', SendSmsInput);
