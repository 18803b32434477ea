import type { ChannelName } from '../db/schema';
import type { DigestEntry, MarkupFamily, RenderedDigest } from '../digest/render';

/** The DingTalk message types: the one list the zod schema and the GraphQL enum are built from. */
export const dingMsgTypes = ['TEXT', 'MARKDOWN', 'LINK', 'ACTION_CARD'] as const;
export type DingMsgType = (typeof dingMsgTypes)[number];

export interface DingMessage {
  accessToken: string;
  secret: string;
  msgType: DingMsgType;
  content: string;
  title?: string;
  messageUrl?: string;
  picUrl?: string;
  atMobiles: string[];
  atUserIds: string[];
  atAll: boolean;
}

export interface EmailMessage {
  to: string[];
  cc: string[];
  bcc: string[];
  subject: string;
  text: string;
  html?: string;
}

export interface SmsMessage {
  /** E.164, e.g. +8613800138000. */
  mobile: string;
  content: string;
  template?: string;
  params?: Record<string, string>;
}

/** Feishu/Lark custom bot (providers.md §6). `token` is the part of the webhook URL after /open-apis/bot/v2/hook/. */
export const feishuMsgTypes = ['TEXT', 'POST', 'CARD'] as const;
export type FeishuMsgType = (typeof feishuMsgTypes)[number];

export interface FeishuMessage {
  token: string;
  /** Signs the message when the bot has 签名校验 on. */
  secret?: string;
  msgType: FeishuMsgType;
  content: string;
  title?: string;
  atAll: boolean;
}

/** WeCom (企业微信) group robot (providers.md §7). The key is the secret: no signature. */
export const weComMsgTypes = ['TEXT', 'MARKDOWN'] as const;
export type WeComMsgType = (typeof weComMsgTypes)[number];

export interface WeComMessage {
  key: string;
  msgType: WeComMsgType;
  content: string;
  mentionedList: string[];
  mentionedMobileList: string[];
}

/** Any JSON value: what a signed webhook POSTs. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A signed outgoing webhook (Standard Webhooks, providers.md §8). */
export interface WebhookMessage {
  url: string;
  body: JsonValue;
  /** `whsec_…`: sealed at rest like robot secrets. */
  secret: string;
}

/** The message each channel sends. A new channel adds its line here and its name to `channels` in db/enums.ts. */
export interface MessageByChannel {
  DING: DingMessage;
  EMAIL: EmailMessage;
  SMS: SmsMessage;
  FEISHU: FeishuMessage;
  WECOM: WeComMessage;
  WEBHOOK: WebhookMessage;
}

export interface SendContext {
  deliveryId: string;
  attempt: number;
  signal: AbortSignal;
}

export interface SendResult {
  providerMessageId?: string;
  /** Something the caller should know even though the send succeeded (partially rejected recipients, say). */
  note?: string;
}

/**
 * How a failed attempt counts: `retryable` is tried again with backoff, `rate_limited` too but not before
 * `retryAfterMs`, `permanent` ends the delivery. `retryable: false` on a rate-limited verification code is decided
 * by the dispatcher, not the channel.
 */
export type FailureKind = 'retryable' | 'permanent' | 'rate_limited';

export class ChannelError extends Error {
  constructor(
    readonly kind: FailureKind,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ChannelError';
  }
}

/** How often a provider takes messages for one recipient (a DingTalk robot: 20 a minute, muted 10 minutes past that). */
export interface PacingRule {
  perWindow: number;
  windowMs: number;
  /** How long the recipient rests after the provider answered "too fast" (a RATE_LIMITED attempt). */
  muteMs: number;
}

/**
 * What a robot channel needs for alert-storm digests (src/digest/): which markup family renders them, how large one
 * message may be, and how its messages fold and carry a digest.
 */
export interface ChannelDigest<M> {
  family: MarkupFamily;
  /** The provider's size limit, in the bytes `size` counts. */
  maxBytes: number;
  /**
   * What a message contributes to a digest, from its stored (non-secret) fields and the time it was recorded; undefined
   * when a digest would lose something of it (a mention the family cannot carry, say): it then goes alone.
   */
  entry(fields: Partial<M>, createdAt: number): DigestEntry | undefined;
  /** The message that carries `digest`, sent with the carrier's credentials (`carrier` is its own message). */
  build(carrier: M, digest: RenderedDigest): M;
  /** What the provider counts against `maxBytes` for this message. */
  size(message: M): number;
}

/** One transport of one channel. Every provider implements this and nothing else. */
export interface Channel<C extends ChannelName = ChannelName> {
  readonly channel: C;
  /** Provider label recorded on each delivery, e.g. `smtp`, `aliyun`, `file-outbox`. */
  readonly provider: string;
  /** True for transports that only pretend (file outbox, log): shown in the start banner. */
  readonly development: boolean;
  /** How often the provider takes messages for one recipient (a robot), when it limits that: the dispatcher keeps to it. */
  readonly pacing?: PacingRule;
  /** Alert-storm digests (robot channels): with pacing, a backlog beyond what the pace lets out folds into digests. */
  readonly digest?: ChannelDigest<MessageByChannel[C]>;
  send(message: MessageByChannel[C], context: SendContext): Promise<SendResult>;
  /**
   * Refuses, before anything is recorded, a message this transport would certainly refuse for a reason the input schema
   * cannot see (a webhook URL that resolves to a refused address): throws a ValidationError. Settles otherwise.
   */
  validate?(message: MessageByChannel[C]): Promise<void>;
  /** Settles once the channel can send without a start-up delay (a thread loaded, say); for those that have one. */
  ready?(): Promise<void>;
  close?(): Promise<void>;
}

export type Channels = { [C in ChannelName]: Channel<C> };

/** What a channel whose body is not written yet answers: permanent, so a delivery recorded by mistake ends FAILED. */
export function notImplemented(channel: ChannelName): ChannelError {
  return new ChannelError('permanent', 'NOT_IMPLEMENTED', `The ${channel} channel is not implemented yet`);
}
