import { weComMsgTypes } from '../../channels/channel';
import { builder } from '../builder';
import { sendMutation } from './send-mutation';

const WeComMsgTypeEnum = builder.enumType('WeComMsgType', { values: weComMsgTypes });

const SendWeComInput = builder.inputType('SendWeComInput', {
  description: 'A message to a WeCom (企业微信) group robot',
  fields: (t) => ({
    key: t.string({
      required: true,
      description: 'The robot key (the UUID after key= in its webhook URL, or the whole URL); never shown again',
    }),
    msgType: t.field({ type: WeComMsgTypeEnum, defaultValue: 'TEXT' }),
    content: t.string({ required: true, description: 'Text (at most 2048 bytes in UTF-8), or markdown for MARKDOWN (4096)' }),
    mentionedList: t.stringList({ description: 'TEXT only: userids to @mention, or @all' }),
    mentionedMobileList: t.stringList({ description: 'TEXT only: mobile numbers to @mention, or @all' }),
    idempotencyKey: t.string({ description: 'Same key and payload return the original delivery' }),
    wait: t.boolean({ description: 'Wait for the first attempt (default true)' }),
  }),
});

sendMutation('sendWeCom', 'WECOM', SendWeComInput);
