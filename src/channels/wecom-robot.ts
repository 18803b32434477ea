import { weComDigest } from '../digest/robots';
import type { Logger } from '../logger';
import {
  ChannelError,
  type Channel,
  type ChannelDigest,
  type FailureKind,
  type PacingRule,
  type SendContext,
  type SendResult,
  type WeComMessage,
} from './channel';
import {
  createProviderHttp,
  isRetryableStatus,
  parseJson,
  redact,
  requestText,
  unexpectedAnswer,
  type ProviderHttp,
} from './provider-http';

/** WeCom refuses a text `content` above this many UTF-8 bytes, a markdown `content` above the other. */
export const weComContentLimitBytes = { TEXT: 2048, MARKDOWN: 4096 } as const;

/**
 * WeCom wants a mainland mobile as its 11 digits (what a member's profile holds); the API keeps E.164
 * (`+8613800138000`), as for SMS. Other numbers go as given, and `@all` stays `@all`.
 */
export function weComMobile(mobile: string): string {
  return /^\+861\d{10}$/.test(mobile) ? mobile.slice(3) : mobile;
}

/** The JSON body WeCom expects. Mentions exist on text only: in markdown they are written `<@userid>` in the content. */
export function weComBody(message: WeComMessage): Record<string, unknown> {
  if (message.msgType === 'MARKDOWN') return { msgtype: 'markdown', markdown: { content: message.content } };
  return {
    msgtype: 'text',
    text: {
      content: message.content,
      ...(message.mentionedList.length > 0 ? { mentioned_list: message.mentionedList } : {}),
      ...(message.mentionedMobileList.length > 0 ? { mentioned_mobile_list: message.mentionedMobileList.map(weComMobile) } : {}),
    },
  };
}

const minuteMs = 60_000;

/**
 * Every errcode the WeCom group robot documents and how the gateway treats it. Codes not listed are permanent:
 * WeCom documents no other transient ones for this API (its -1 "system busy" is the exception every WeCom API shares).
 */
export const weComErrcodes: Record<number, { kind: FailureKind; meaning: string }> = {
  [-1]: { kind: 'retryable', meaning: 'system busy' },
  45009: { kind: 'rate_limited', meaning: 'api freq out of limit: over 20 messages a minute for this robot' },
  93000: { kind: 'permanent', meaning: 'invalid webhook url: the key is unknown or the robot was removed' },
  40008: { kind: 'permanent', meaning: 'invalid message type' },
  44004: { kind: 'permanent', meaning: 'empty content' },
  40058: { kind: 'permanent', meaning: 'invalid parameter (a field missing, of the wrong type or too long)' },
};

/** WeCom counts a robot's messages by the minute and mutes nothing beyond it: a minute's rest settles a 45009. */
export const weComRestMs = minuteMs;

/** errcode → how the gateway treats it. */
export function classifyWeComError(errcode: number): { kind: FailureKind; retryAfterMs?: number } {
  const kind = weComErrcodes[errcode]?.kind ?? 'permanent';
  return kind === 'rate_limited' ? { kind, retryAfterMs: weComRestMs } : { kind };
}

export interface WeComRobotOptions {
  /** WECOM_BASE_URL: https://qyapi.weixin.qq.com by default. */
  baseUrl: string;
  timeoutMs: number;
  logger?: Logger;
  /** Messages a minute per robot the gateway sends (WeCom takes 20); 19 by default, as for DingTalk. */
  perMinute?: number;
}

/**
 * WeCom (企业微信) group robot: `POST /cgi-bin/webhook/send?key=…`. There is no signature: the key is the secret, and
 * the request URL carries it, so neither the URL nor got's own error messages ever reach a log line or an error.
 */
export class WeComRobotChannel implements Channel<'WECOM'> {
  readonly channel = 'WECOM';
  readonly provider = 'wecom';
  readonly development = false;
  readonly pacing: PacingRule;
  /**
   * Alert-storm digests: markdown of at most 4096 content bytes (`weComContentLimitBytes.MARKDOWN`), user mentions
   * as `<@userid>`; a message mentioning by mobile or @all goes alone (markdown cannot carry those).
   */
  readonly digest: ChannelDigest<WeComMessage> = weComDigest;
  private readonly http: ProviderHttp;

  constructor(readonly options: WeComRobotOptions) {
    this.pacing = { perWindow: options.perMinute ?? 19, windowMs: minuteMs, muteMs: weComRestMs };
    this.http = createProviderHttp(options.timeoutMs, {
      prefixUrl: options.baseUrl.replace(/\/+$/, ''),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
  }

  async send(message: WeComMessage, context: SendContext): Promise<SendResult> {
    // requestText turns a request without an answer into a ChannelError that names neither the URL nor the key.
    const { statusCode, body } = await requestText(
      'WeCom',
      () =>
        this.http.client.post('cgi-bin/webhook/send', {
          searchParams: { key: message.key },
          body: JSON.stringify(weComBody(message)),
          signal: context.signal,
        }),
      this.http.timeoutMs,
    );
    if (isRetryableStatus(statusCode)) throw unexpectedAnswer('WeCom', statusCode);
    const parsed = parseJson<{ errcode?: unknown; errmsg?: unknown }>(body);
    const errcode =
      parsed && typeof parsed === 'object'
        ? typeof parsed.errcode === 'number'
          ? parsed.errcode
          : Number.parseInt(String(parsed.errcode), 10)
        : Number.NaN;
    if (!Number.isFinite(errcode)) {
      // A 2xx without errcode is a garbled answer worth another try; any other status means a wrong base URL.
      const kind = statusCode < 300 ? 'retryable' : 'permanent';
      throw new ChannelError(kind, `HTTP_${statusCode}`, `WeCom answered HTTP ${statusCode} without an errcode`);
    }
    if (errcode === 0) return {};
    const errmsg = parsed && typeof parsed.errmsg === 'string' ? parsed.errmsg : '';
    const { kind, retryAfterMs } = classifyWeComError(errcode);
    throw new ChannelError(kind, String(errcode), scrub(errmsg, message), retryAfterMs);
  }

  async close() {
    this.http.close();
  }
}

/**
 * WeCom's own words (e.g. "invalid webhook url, hint: [1733…], from ip: …, more info at …"; the hint is WeCom's
 * request id, worth keeping for its support), minus the key, kept short enough for a log line.
 */
function scrub(errmsg: string, message: WeComMessage): string {
  const text = redact(errmsg || 'WeCom gave no errmsg', [message.key], '[redacted]');
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}
