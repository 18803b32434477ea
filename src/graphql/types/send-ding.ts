import { dingMsgTypes } from '../../channels/channel';
import { builder } from '../builder';
import { sendMutation } from './send-mutation';

const DingMsgTypeEnum = builder.enumType('DingMsgType', { values: dingMsgTypes });

const SendDingInput = builder.inputType('SendDingInput', {
  description: 'A message to a DingTalk group robot with 加签 (signing) enabled',
  fields: (t) => ({
    accessToken: t.string({ required: true, description: 'The robot webhook access_token; never shown again' }),
    secret: t.string({ required: true, description: 'The robot signing secret (SEC…); never shown again' }),
    content: t.string({ required: true, description: 'Text, or markdown for MARKDOWN' }),
    msgType: t.field({ type: DingMsgTypeEnum, defaultValue: 'TEXT' }),
    title: t.string({ description: 'Required for MARKDOWN, LINK and ACTION_CARD' }),
    messageUrl: t.string({ description: 'Required for LINK and ACTION_CARD' }),
    picUrl: t.string(),
    atMobiles: t.stringList(),
    atUserIds: t.stringList(),
    atAll: t.boolean(),
    idempotencyKey: t.string({ description: 'Same key and payload return the original delivery' }),
    wait: t.boolean({ description: 'Wait for the first attempt (default true)' }),
  }),
});

sendMutation('sendDing', 'DING', SendDingInput);
