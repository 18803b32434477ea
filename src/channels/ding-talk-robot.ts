import crypto from 'node:crypto';
import { dingTalkDigest } from '../digest/robots';
import type { Logger } from '../logger';
import { ChannelError, type Channel, type ChannelDigest, type DingMessage, type PacingRule, type FailureKind, type SendContext, type SendResult } from './channel';
import { createProviderHttp, isRetryableStatus, parseJson, redact, requestText, unexpectedAnswer, type ProviderHttp } from './provider-http';

/** DingTalk 加签: Base64(HmacSHA256(key = secret, timestamp + "\n" + secret)). Not yet URL-encoded. */
export function signDingTalk(timestamp: number | string, secret: string): string {
  return crypto.createHmac('sha256', secret).update(`${timestamp}\n${secret}`, 'utf8').digest('base64');
}

/** The query string of one signed send; the Base64 signature is URL-encoded exactly once (`+ / =` → `%2B %2F %3D`). */
export function dingTalkQuery(accessToken: string, secret: string, timestamp: number): string {
  return new URLSearchParams({
    access_token: accessToken,
    timestamp: String(timestamp),
    sign: signDingTalk(timestamp, secret),
  }).toString();
}

/** DingTalk refuses a serialized body above this many bytes (errcode 460101). */
export const dingTalkBodyLimitBytes = 20_000;

/** The JSON body DingTalk expects for a message. `at` exists on text and markdown only. */
export function dingTalkBody(message: DingMessage): Record<string, unknown> {
  const at = { atMobiles: message.atMobiles, atUserIds: message.atUserIds, isAtAll: message.atAll };
  // DingTalk only renders an @mention whose mobile or userId also appears in the text.
  const mentions = [...message.atMobiles, ...message.atUserIds]
    .filter((who) => !message.content.includes(`@${who}`))
    .map((who) => `@${who}`)
    .join(' ');
  const withMentions = mentions ? `${message.content} ${mentions}` : message.content;
  switch (message.msgType) {
    case 'TEXT':
      return { msgtype: 'text', text: { content: withMentions }, at };
    case 'MARKDOWN':
      return { msgtype: 'markdown', markdown: { title: message.title, text: withMentions }, at };
    case 'LINK':
      return {
        msgtype: 'link',
        link: {
          title: message.title,
          text: message.content,
          messageUrl: message.messageUrl,
          ...(message.picUrl ? { picUrl: message.picUrl } : {}),
        },
      };
    case 'ACTION_CARD':
      return {
        msgtype: 'actionCard',
        actionCard: {
          title: message.title,
          text: message.content,
          btnOrientation: '0',
          singleTitle: '阅读全文',
          singleURL: message.messageUrl,
        },
      };
  }
}

const minuteMs = 60_000;
/** Past 20 messages a minute DingTalk mutes the robot for 10 minutes. */
export const dingTalkMuteMs = 10 * minuteMs;

/**
 * Every errcode DingTalk documents for the robot send API and how the gateway treats it
 * (see ../shared/providers.md §1). Codes not listed are treated as permanent: DingTalk documents no other transient ones.
 */
export const dingTalkErrcodes: Record<number, { kind: FailureKind; meaning: string }> = {
  [-1]: { kind: 'retryable', meaning: 'system busy' },
  130101: { kind: 'rate_limited', meaning: 'send too fast: over 20 a minute, robot muted 10 minutes' },
  410100: { kind: 'rate_limited', meaning: 'send too fast (throttled)' },
  310000: { kind: 'permanent', meaning: 'security check failed: signature, timestamp, keyword or IP whitelist' },
  300001: { kind: 'permanent', meaning: 'token does not exist' },
  300005: { kind: 'permanent', meaning: 'token does not exist' },
  400013: { kind: 'permanent', meaning: 'group dissolved' },
  400101: { kind: 'permanent', meaning: 'access_token missing' },
  400102: { kind: 'permanent', meaning: 'robot disabled' },
  400105: { kind: 'permanent', meaning: 'unsupported msgtype' },
  400106: { kind: 'permanent', meaning: 'robot not in the group' },
  430101: { kind: 'permanent', meaning: 'unsafe link' },
  430102: { kind: 'permanent', meaning: 'improper text' },
  430103: { kind: 'permanent', meaning: 'improper image' },
  430104: { kind: 'permanent', meaning: 'improper content' },
  460101: { kind: 'permanent', meaning: 'message too long (over 20000 bytes)' },
  101002: { kind: 'permanent', meaning: 'message too long (older code)' },
  40035: { kind: 'permanent', meaning: 'missing parameter' },
  43002: { kind: 'permanent', meaning: 'POST required' },
  43004: { kind: 'permanent', meaning: 'invalid Content-Type' },
  400402: { kind: 'permanent', meaning: 'missing field (markdown title)' },
  90030: { kind: 'permanent', meaning: 'webhook over limit: the organisation quota is used up' },
};

/** errcode → how the gateway treats it. */
export function classifyDingTalkError(errcode: number): { kind: FailureKind; retryAfterMs?: number } {
  const kind = dingTalkErrcodes[errcode]?.kind ?? 'permanent';
  return kind === 'rate_limited' ? { kind, retryAfterMs: dingTalkMuteMs } : { kind };
}

/** 310000 about the timestamp. Newer Chinese errmsgs mention 时间戳 in their `solution` even for a bad signature. */
const isTimestampRefusal = (errcode: number, errmsg: string) =>
  errcode === 310000 && /timestamp|时间戳/i.test(errmsg.split(/;\s*solution:/)[0]);

export interface DingTalkRobotOptions {
  baseUrl: string;
  timeoutMs: number;
  logger?: Logger;
  /** Messages a minute per robot the gateway sends (DingTalk takes 20); 19 by default. */
  perMinute?: number;
  /** Clock used for the signature timestamp (tests). */
  now?: () => number;
}

interface Answer {
  statusCode: number;
  errcode?: number;
  errmsg: string;
}

/** DingTalk custom group robot (自定义机器人) with 加签 signing. */
export class DingTalkRobotChannel implements Channel<'DING'> {
  readonly channel = 'DING';
  readonly provider = 'dingtalk';
  readonly development = false;
  readonly pacing: PacingRule;
  /** Alert-storm digests: markdown with the union of the folded messages' mentions, under DingTalk's body limit. */
  readonly digest: ChannelDigest<DingMessage> = dingTalkDigest({ maxBytes: dingTalkBodyLimitBytes, body: dingTalkBody });
  private readonly http: ProviderHttp;
  private readonly now: () => number;

  constructor(private readonly options: DingTalkRobotOptions) {
    this.now = options.now ?? Date.now;
    this.pacing = { perWindow: options.perMinute ?? 19, windowMs: minuteMs, muteMs: dingTalkMuteMs };
    this.http = createProviderHttp(options.timeoutMs, {
      prefixUrl: options.baseUrl.replace(/\/+$/, ''),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
  }

  async send(message: DingMessage, context: SendContext): Promise<SendResult> {
    const body = JSON.stringify(dingTalkBody(message));
    let answer = await this.post(message, body, context);
    if (answer.errcode !== undefined && isTimestampRefusal(answer.errcode, answer.errmsg)) {
      // The timestamp may have gone stale on the way; a fresh signature settles that. Twice means the clock is off.
      answer = await this.post(message, body, context);
      if (answer.errcode !== undefined && isTimestampRefusal(answer.errcode, answer.errmsg)) {
        this.options.logger?.warn(
          { deliveryId: context.deliveryId, errcode: answer.errcode },
          'DingTalk refused the signature timestamp twice: check this host clock (DingTalk allows 1 hour of skew)',
        );
      }
    }
    if (answer.errcode === 0) return {};
    if (answer.errcode === undefined) {
      const code = `HTTP_${answer.statusCode}`;
      // A 2xx without errcode is a garbled answer worth another try; any other status means a wrong base URL.
      const kind = answer.statusCode < 300 ? 'retryable' : 'permanent';
      throw new ChannelError(kind, code, `DingTalk answered HTTP ${answer.statusCode} without an errcode`);
    }
    const { kind, retryAfterMs } = classifyDingTalkError(answer.errcode);
    throw new ChannelError(kind, String(answer.errcode), scrub(answer.errmsg, message), retryAfterMs);
  }

  private async post(message: DingMessage, body: string, context: SendContext): Promise<Answer> {
    // Never echo got's message or URL: the URL carries the access token.
    const { statusCode, body: text } = await requestText(
      'DingTalk',
      () =>
        this.http.client.post('robot/send', {
          searchParams: dingTalkQuery(message.accessToken, message.secret, this.now()),
          body,
          signal: context.signal,
        }),
      this.http.timeoutMs,
    );
    if (isRetryableStatus(statusCode)) throw unexpectedAnswer('DingTalk', statusCode);
    const parsed = parseJson<{ errcode?: unknown; errmsg?: unknown }>(text);
    if (!parsed || typeof parsed !== 'object') return { statusCode, errmsg: '' };
    const errcode = typeof parsed.errcode === 'number' ? parsed.errcode : Number.parseInt(String(parsed.errcode), 10);
    return {
      statusCode,
      errcode: Number.isFinite(errcode) ? errcode : undefined,
      errmsg: typeof parsed.errmsg === 'string' ? parsed.errmsg : '',
    };
  }

  async close() {
    this.http.close();
  }
}

/** DingTalk's own words, minus anything secret, kept short enough for a log line. */
function scrub(errmsg: string, message: DingMessage): string {
  const text = redact(errmsg || 'DingTalk gave no errmsg', [message.accessToken, message.secret], '[redacted]');
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}
