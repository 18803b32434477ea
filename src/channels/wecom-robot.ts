import type { Logger } from '../logger';
import { notImplemented, type Channel, type SendContext, type SendResult, type WeComMessage } from './channel';

export interface WeComRobotOptions {
  /** WECOM_BASE_URL: https://qyapi.weixin.qq.com by default. */
  baseUrl: string;
  timeoutMs: number;
  logger?: Logger;
}

/**
 * WeCom (企业微信) group robot, providers.md §7. A stub: the channel's engineer writes `send` (with provider-http.ts:
 * `createProviderHttp`, `requestJson`, `redact`, `unexpectedAnswer`) and its `pacing`.
 */
export class WeComRobotChannel implements Channel<'WECOM'> {
  readonly channel = 'WECOM';
  readonly provider = 'wecom';
  readonly development = false;

  constructor(readonly options: WeComRobotOptions) {}

  async send(_message: WeComMessage, _context: SendContext): Promise<SendResult> {
    throw notImplemented(this.channel);
  }
}
