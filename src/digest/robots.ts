import type { ChannelDigest, DingMessage, FeishuMessage, WeComMessage } from '../channels/channel';
import { noMentions, type DigestEntry } from './render';

// How each robot channel folds its messages into a digest and carries one. The DingTalk channel declares its own
// (`DingTalkRobotChannel.digest`, built from `dingTalkDigest` with its body and size limit), as does Feishu
// (`FeishuBotChannel.digest`, from `feishuDigest`); the WeCom channel declares `weComDigest`.

const utf8 = (text: string) => Buffer.byteLength(text, 'utf8');

/** DingTalk: any message folds (a link or card becomes its title, text and URL); the digest is markdown with `at`. */
export function dingTalkDigest(options: { maxBytes: number; body: (message: DingMessage) => unknown }): ChannelDigest<DingMessage> {
  return {
    family: 'robot-markdown',
    maxBytes: options.maxBytes,
    entry: (fields, createdAt): DigestEntry => ({
      at: createdAt,
      title: fields.msgType === 'TEXT' ? undefined : (fields.title ?? undefined),
      text: fields.content ?? '',
      url: fields.messageUrl ?? undefined,
      mentions: { userIds: fields.atUserIds ?? [], mobiles: fields.atMobiles ?? [], all: fields.atAll ?? false },
    }),
    build: (carrier, digest) => ({
      accessToken: carrier.accessToken,
      secret: carrier.secret,
      msgType: 'MARKDOWN',
      title: digest.title,
      content: digest.content,
      // DingTalk renders these only when they also appear in the text: its body builder appends `@…` for each.
      atMobiles: digest.mentions.mobiles,
      atUserIds: digest.mentions.userIds,
      atAll: digest.mentions.all,
    }),
    size: (message) => utf8(JSON.stringify(options.body(message))),
  };
}

/** WeCom markdown content is at most 4096 bytes (UTF-8). */
export const weComMarkdownLimitBytes = 4096;

/**
 * WeCom: the digest is a markdown message, whose content counts against 4096 bytes. Markdown mentions user ids as
 * `<@userid>` but cannot mention by mobile nor @all: a message with `mentionedMobileList` or `@all` goes alone.
 */
export const weComDigest: ChannelDigest<WeComMessage> = {
  family: 'robot-markdown',
  maxBytes: weComMarkdownLimitBytes,
  entry: (fields, createdAt) => {
    const users = fields.mentionedList ?? [];
    if ((fields.mentionedMobileList ?? []).length > 0 || users.includes('@all')) return undefined;
    return { at: createdAt, text: fields.content ?? '', mentions: { ...noMentions(), userIds: users } };
  },
  build: (carrier, digest) => {
    const mentions = digest.mentions.userIds.map((id) => `<@${id}>`).join(' ');
    return {
      key: carrier.key,
      msgType: 'MARKDOWN',
      content: mentions ? `${digest.content}\n\n${mentions}` : digest.content,
      mentionedList: [],
      mentionedMobileList: [],
    };
  },
  size: (message) => utf8(message.content),
};

/**
 * Feishu: the digest is an interactive card (`msgType: CARD`: a header with the digest's title and one markdown
 * element, see `feishuBody`) in robot markdown; `atAll` carries the union of @all (the card's `<at id=all></at>`).
 * Its size is the body as Feishu receives it, signature fields included: the channel's own `feishuBodyBytes`, passed
 * in (as DingTalk's body is) so this module imports nothing from the channel.
 */
export function feishuDigest(options: { maxBytes: number; size: (message: FeishuMessage) => number }): ChannelDigest<FeishuMessage> {
  return {
    family: 'robot-markdown',
    maxBytes: options.maxBytes,
    entry: (fields, createdAt) => ({
      at: createdAt,
      title: fields.msgType === 'TEXT' ? undefined : (fields.title ?? undefined),
      text: fields.content ?? '',
      mentions: { ...noMentions(), all: fields.atAll ?? false },
    }),
    build: (carrier, digest) => ({
      token: carrier.token,
      secret: carrier.secret,
      msgType: 'CARD',
      title: digest.title,
      content: digest.content,
      atAll: digest.mentions.all,
    }),
    size: options.size,
  };
}
