import type { Logger } from '../logger';
import { notImplemented, type Channel, type FeishuMessage, type SendContext, type SendResult } from './channel';

export interface FeishuBotOptions {
  /** FEISHU_BASE_URL: https://open.feishu.cn, or https://open.larksuite.com for Lark. */
  baseUrl: string;
  timeoutMs: number;
  logger?: Logger;
}

/**
 * Feishu/Lark custom bot (自定义机器人), providers.md §6. A stub: the channel's engineer writes `send` (with
 * provider-http.ts: `createProviderHttp`, `requestJson`, `redact`, `unexpectedAnswer`) and its `pacing`.
 */
export class FeishuBotChannel implements Channel<'FEISHU'> {
  readonly channel = 'FEISHU';
  readonly provider = 'feishu';
  readonly development = false;

  constructor(readonly options: FeishuBotOptions) {}

  async send(_message: FeishuMessage, _context: SendContext): Promise<SendResult> {
    throw notImplemented(this.channel);
  }
}
