import { feishuMsgTypes } from '../../channels/channel';
import { builder } from '../builder';
import { sendMutation } from './send-mutation';

const FeishuMsgTypeEnum = builder.enumType('FeishuMsgType', {
  description: 'TEXT: a text message; POST: rich text (post) with a title; CARD: an interactive card with a title and markdown',
  values: feishuMsgTypes,
});

const SendFeishuInput = builder.inputType('SendFeishuInput', {
  description: 'A message to a Feishu/Lark custom bot (自定义机器人), signed when the secret is given',
  fields: (t) => ({
    token: t.string({ required: true, description: 'The part of the webhook URL after /open-apis/bot/v2/hook/; never shown again' }),
    secret: t.string({ description: 'The bot signing secret (签名校验), when the bot has one; never shown again' }),
    content: t.string({ required: true, description: 'Text; one paragraph a line for POST; markdown for CARD' }),
    msgType: t.field({ type: FeishuMsgTypeEnum, defaultValue: 'TEXT' }),
    title: t.string({ description: 'Required for POST and CARD' }),
    atAll: t.boolean({ description: 'Mention everyone in the group' }),
    idempotencyKey: t.string({ description: 'Same key and payload return the original delivery' }),
    wait: t.boolean({ description: 'Wait for the first attempt (default true)' }),
  }),
});

sendMutation('sendFeishu', 'FEISHU', SendFeishuInput);
