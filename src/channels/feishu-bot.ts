import crypto from 'node:crypto';
import { feishuDigest } from '../digest/robots';
import type { Logger } from '../logger';
import { ChannelError, type Channel, type ChannelDigest, type FailureKind, type FeishuMessage, type PacingRule, type SendContext, type SendResult } from './channel';
import { createProviderHttp, isRetryableStatus, parseJson, redact, requestText, unexpectedAnswer, type ProviderHttp } from './provider-http';

/**
 * Feishu/Lark 签名校验: Base64(HmacSHA256(key = timestamp + "\n" + secret, message = "")). The string-to-sign is the
 * KEY and the message is empty; the other way round (DingTalk's way) is answered 19021. `timestamp` is in seconds.
 */
export function signFeishu(timestamp: number | string, secret: string): string {
  return crypto.createHmac('sha256', `${timestamp}\n${secret}`).update('').digest('base64');
}

/**
 * Feishu refuses a request body above 20 KB (its custom bot guide). The gateway keeps a margin below 20 × 1024 and
 * counts the signature fields too, so a body that passes here passes there.
 */
export const feishuBodyLimitBytes = 20_000;

/** What `timestamp` and `sign` add to a body at most: `,"timestamp":"<10 digits>","sign":"<44 Base64>"`. */
const signatureFieldsBytes = `,"timestamp":"${'9'.repeat(10)}","sign":"${'A'.repeat(44)}"`.length;

/** The JSON body Feishu expects for a message, before the signature fields. */
export function feishuBody(message: Pick<FeishuMessage, 'msgType' | 'content' | 'title' | 'atAll'>): Record<string, unknown> {
  switch (message.msgType) {
    case 'TEXT':
      return {
        msg_type: 'text',
        content: { text: message.atAll ? `${message.content} <at user_id="all">所有人</at>` : message.content },
      };
    case 'POST': {
      // One paragraph per line of the content; an @all as the last element of the last paragraph.
      const paragraphs: Record<string, string>[][] = message.content.split(/\r?\n/).map((line) => [{ tag: 'text', text: line }]);
      if (message.atAll) paragraphs[paragraphs.length - 1]!.push({ tag: 'at', user_id: 'all', user_name: '所有人' });
      return { msg_type: 'post', content: { post: { zh_cn: { title: message.title ?? '', content: paragraphs } } } };
    }
    case 'CARD':
      return {
        msg_type: 'interactive',
        card: {
          header: { title: { tag: 'plain_text', content: message.title ?? '' } },
          elements: [{ tag: 'markdown', content: message.atAll ? `${message.content}\n<at id=all></at>` : message.content }],
        },
      };
  }
}

/** The size Feishu sees: the body as sent, signature fields included when there is a secret. */
export function feishuBodyBytes(message: Pick<FeishuMessage, 'msgType' | 'content' | 'title' | 'atAll' | 'secret'>): number {
  return Buffer.byteLength(JSON.stringify(feishuBody(message)), 'utf8') + (message.secret ? signatureFieldsBytes : 0);
}

const minuteMs = 60_000;
/**
 * Feishu takes 100 messages a minute AND 5 a second per bot. The dispatcher keeps one sliding window per recipient:
 * at most 5 in any 3.1 s keeps both. 5 in any 3 s would be exactly 100 a minute at the gateway, but what Feishu counts
 * is arrivals, and those drift by tens of milliseconds from the attempt starts the gateway counts (the end-to-end
 * pacing test saw 7 arrivals within 3 s): 3.1 s leaves 2 s a minute for that, at 96.8 a minute (as DingTalk's 19 of
 * 20). A bot answered "too fast" rests a minute, which clears both of Feishu's windows.
 */
export const feishuPacing: PacingRule = { perWindow: 5, windowMs: 3_100, muteMs: minuteMs };

/**
 * Every code the custom bot documents (or is seen answering) and how the gateway treats it. Codes not listed are
 * treated as permanent: Feishu documents no other transient ones for the bot hook.
 */
export const feishuCodes: Record<number, { kind: FailureKind; meaning: string }> = {
  9499: { kind: 'permanent', meaning: 'bad request: the body could not be parsed' },
  11232: { kind: 'rate_limited', meaning: 'frequency limited: over 100 a minute or 5 a second for this bot' },
  19001: { kind: 'permanent', meaning: 'the webhook token is invalid (bot removed, or token mistyped)' },
  19002: { kind: 'permanent', meaning: 'a parameter is invalid (msg_type)' },
  19021: { kind: 'permanent', meaning: 'signature mismatch, or timestamp not within one hour' },
  19022: { kind: 'permanent', meaning: 'the IP address is not allowed' },
  19024: { kind: 'permanent', meaning: 'no keyword of the bot found in the message' },
  19036: { kind: 'permanent', meaning: 'the message exceeds the size limit' },
};

/** code → how the gateway treats it; "too fast" rests the bot for a minute, which clears both of Feishu's windows. */
export function classifyFeishuError(code: number): { kind: FailureKind; retryAfterMs?: number } {
  const kind = feishuCodes[code]?.kind ?? 'permanent';
  return kind === 'rate_limited' ? { kind, retryAfterMs: feishuPacing.muteMs } : { kind };
}

export interface FeishuBotOptions {
  /** FEISHU_BASE_URL: https://open.feishu.cn, or https://open.larksuite.com for Lark. */
  baseUrl: string;
  timeoutMs: number;
  logger?: Logger;
  /** Clock used for the signature timestamp (tests). */
  now?: () => number;
}

/** Feishu/Lark custom bot (自定义机器人), with 签名校验 signing when the caller gives the secret. */
export class FeishuBotChannel implements Channel<'FEISHU'> {
  readonly channel = 'FEISHU';
  readonly provider = 'feishu';
  readonly development = false;
  readonly pacing: PacingRule = feishuPacing;
  /** Alert-storm digests: a card whose markdown element folds the waiting messages, under Feishu's body limit. */
  readonly digest: ChannelDigest<FeishuMessage> = feishuDigest({ maxBytes: feishuBodyLimitBytes, size: feishuBodyBytes });
  private readonly http: ProviderHttp;
  private readonly now: () => number;

  constructor(readonly options: FeishuBotOptions) {
    this.now = options.now ?? Date.now;
    this.http = createProviderHttp(options.timeoutMs, {
      prefixUrl: options.baseUrl.replace(/\/+$/, ''),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
  }

  async send(message: FeishuMessage, context: SendContext): Promise<SendResult> {
    const body: Record<string, unknown> = feishuBody(message);
    if (message.secret) {
      const timestamp = String(Math.floor(this.now() / 1000));
      body.timestamp = timestamp;
      body.sign = signFeishu(timestamp, message.secret);
    }
    // Never echo got's message or URL: the URL carries the token.
    const { statusCode, body: text } = await requestText(
      'Feishu',
      () =>
        this.http.client.post(`open-apis/bot/v2/hook/${encodeURIComponent(message.token)}`, {
          body: JSON.stringify(body),
          signal: context.signal,
        }),
      this.http.timeoutMs,
    );
    const parsed = parseJson<{ code?: unknown; msg?: unknown; StatusCode?: unknown; StatusMessage?: unknown }>(text);
    const answer = parsed && typeof parsed === 'object' ? parsed : {};
    // `code`/`msg` today; older answers carry `StatusCode`/`StatusMessage` (sometimes alone).
    const code = toCode(answer.code) ?? toCode(answer.StatusCode);
    const msg = typeof answer.msg === 'string' ? answer.msg : typeof answer.StatusMessage === 'string' ? answer.StatusMessage : '';

    if (code === 11232) {
      const { kind, retryAfterMs } = classifyFeishuError(code);
      throw new ChannelError(kind, String(code), scrub(msg, message), retryAfterMs);
    }
    // A proxy's or Feishu's own "not now" (429, 5xx) whatever the body says.
    if (isRetryableStatus(statusCode)) throw unexpectedAnswer('Feishu', statusCode);
    if (code === 0 && statusCode < 300) return {};
    if (code === undefined || code === 0) {
      // A 2xx without a code is a garbled answer worth another try; any other status means a wrong base URL.
      const kind = statusCode < 300 ? 'retryable' : 'permanent';
      throw new ChannelError(kind, `HTTP_${statusCode}`, `Feishu answered HTTP ${statusCode} without a code`);
    }
    if (code === 19021) {
      this.options.logger?.warn(
        { deliveryId: context.deliveryId, code },
        'Feishu refused the signature: check the bot secret, and this host clock (Feishu allows 1 hour of skew)',
      );
    }
    const { kind, retryAfterMs } = classifyFeishuError(code);
    throw new ChannelError(kind, String(code), scrub(msg, message), retryAfterMs);
  }

  async close() {
    this.http.close();
  }
}

function toCode(value: unknown): number | undefined {
  const code = typeof value === 'number' ? value : typeof value === 'string' ? Number.parseInt(value, 10) : Number.NaN;
  return Number.isFinite(code) ? code : undefined;
}

/** Feishu's own words, minus anything secret, kept short enough for a log line. */
function scrub(msg: string, message: FeishuMessage): string {
  const text = redact(msg || 'Feishu gave no msg', [message.token, message.secret], '[redacted]');
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}
