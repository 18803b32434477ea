import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import got, { RequestError, type Got } from 'got';
import { ChannelError, type Channel, type DingMessage, type FailureKind, type SendContext, type SendResult } from './channel';

/** DingTalk 加签: Base64(HmacSHA256(key = secret, timestamp + "\n" + secret)), URL-encoded once by the caller. */
export function signDingTalk(timestamp: number | string, secret: string): string {
  return crypto.createHmac('sha256', secret).update(`${timestamp}\n${secret}`, 'utf8').digest('base64');
}

export const dingTalkBodyLimitBytes = 20_000;

export function dingTalkBody(message: DingMessage): Record<string, unknown> {
  const at = { atMobiles: message.atMobiles, atUserIds: message.atUserIds, isAtAll: message.atAll };
  // DingTalk only renders an @mention whose mobile also appears in the text.
  const mentions = message.atMobiles
    .filter((mobile) => !message.content.includes(`@${mobile}`))
    .map((mobile) => `@${mobile}`)
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
        link: { title: message.title, text: message.content, messageUrl: message.messageUrl, picUrl: message.picUrl ?? '' },
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

/** errcode → how the gateway treats it. Unknown non-zero codes are permanent: DingTalk documents no others as transient. */
export function classifyDingTalkError(errcode: number): { kind: FailureKind; retryAfterMs?: number } {
  if (errcode === -1) return { kind: 'retryable' };
  // Past 20 a minute DingTalk mutes the robot for 10 minutes.
  if (errcode === 130101 || errcode === 410100) return { kind: 'rate_limited', retryAfterMs: 10 * minuteMs };
  return { kind: 'permanent' };
}

export interface DingTalkRobotOptions {
  baseUrl: string;
  timeoutMs: number;
}

export class DingTalkRobotChannel implements Channel<'DING'> {
  readonly channel = 'DING';
  readonly provider = 'dingtalk';
  readonly development = false;
  private readonly client: Got;
  private readonly agents = {
    http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 64 }),
  };

  constructor(private readonly options: DingTalkRobotOptions) {
    this.client = got.extend({
      prefixUrl: options.baseUrl.replace(/\/+$/, ''),
      timeout: { request: options.timeoutMs },
      retry: { limit: 0 },
      throwHttpErrors: false,
      agent: this.agents,
    });
  }

  async send(message: DingMessage, context: SendContext): Promise<SendResult> {
    const timestamp = Date.now();
    const searchParams = new URLSearchParams({
      access_token: message.accessToken,
      timestamp: String(timestamp),
      sign: signDingTalk(timestamp, message.secret),
    });
    let response;
    try {
      response = await this.client.post('robot/send', {
        searchParams,
        json: dingTalkBody(message),
        signal: context.signal,
      });
    } catch (error) {
      const code = error instanceof RequestError ? (error.code ?? 'ECONNECTION') : 'ECONNECTION';
      // Never echo the URL: it carries the access token.
      throw new ChannelError('retryable', code, `DingTalk unreachable: ${code}`);
    }
    if (response.statusCode >= 500 || response.statusCode === 429) {
      throw new ChannelError('retryable', `HTTP_${response.statusCode}`, `DingTalk answered HTTP ${response.statusCode}`);
    }
    let body: { errcode?: unknown; errmsg?: unknown };
    try {
      body = JSON.parse(response.body);
    } catch {
      throw new ChannelError('retryable', `HTTP_${response.statusCode}`, `DingTalk answered a non-JSON body (HTTP ${response.statusCode})`);
    }
    const errcode = Number(body.errcode);
    if (errcode === 0) return {};
    const errmsg = String(body.errmsg ?? '');
    if (!Number.isFinite(errcode)) {
      throw new ChannelError('retryable', `HTTP_${response.statusCode}`, `DingTalk answered without errcode: ${errmsg}`);
    }
    const { kind, retryAfterMs } = classifyDingTalkError(errcode);
    throw new ChannelError(kind, String(errcode), errmsg, retryAfterMs);
  }

  async close() {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}
