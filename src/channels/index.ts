import path from 'node:path';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { Channels } from './channel';
import { DingTalkRobotChannel } from './ding-talk-robot';
import { FileOutboxEmailChannel } from './file-outbox-email';
import { SmtpEmailChannel } from './smtp-email';
import { LogSmsChannel } from './log-sms';

export function createChannels(config: Config, logger: Logger): Channels {
  return {
    DING: new DingTalkRobotChannel({
      baseUrl: config.ding.baseUrl,
      timeoutMs: config.providerTimeoutMs,
      logger: logger.child({ provider: 'dingtalk' }),
    }),
    EMAIL: config.email.smtpUrl
      ? new SmtpEmailChannel(
          { url: config.email.smtpUrl, from: config.email.from, poolSize: config.email.poolSize, timeoutMs: config.providerTimeoutMs },
          logger.child({ provider: 'smtp' }),
        )
      : new FileOutboxEmailChannel(path.join(config.dataDir, 'outbox'), config.email.from),
    SMS: new LogSmsChannel(logger.child({ provider: 'log' })),
  };
}

export async function closeChannels(channels: Channels): Promise<void> {
  await Promise.all(Object.values(channels).map((channel) => channel.close?.()));
}
