import path from 'node:path';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { Channels } from './channel';
import { DingTalkRobotChannel } from './ding-talk-robot';
import { FileOutboxEmailChannel } from './file-outbox-email';
import { SmtpEmailChannel } from './smtp-email';
import { LogSmsChannel } from './log-sms';
import { AliyunSmsChannel } from './aliyun-sms';
import { TencentSmsChannel } from './tencent-sms';
import { FeishuBotChannel } from './feishu-bot';
import { WeComRobotChannel } from './wecom-robot';
import { SignedWebhookChannel } from './signed-webhook';

export function createChannels(config: Config, logger: Logger): Channels {
  return {
    DING: new DingTalkRobotChannel({
      baseUrl: config.ding.baseUrl,
      timeoutMs: config.providerTimeoutMs,
      perMinute: config.ding.perRobotPerMinute,
      logger: logger.child({ provider: 'dingtalk' }),
    }),
    EMAIL: config.email.smtpUrl
      ? new SmtpEmailChannel(
          { url: config.email.smtpUrl, from: config.email.from, poolSize: config.email.poolSize, timeoutMs: config.providerTimeoutMs },
          logger.child({ provider: 'smtp' }),
        )
      : new FileOutboxEmailChannel(path.join(config.dataDir, 'outbox'), config.email.from),
    SMS: createSmsChannel(config, logger),
    FEISHU: new FeishuBotChannel({
      baseUrl: config.feishu.baseUrl,
      timeoutMs: config.providerTimeoutMs,
      logger: logger.child({ provider: 'feishu' }),
    }),
    WECOM: new WeComRobotChannel({
      baseUrl: config.wecom.baseUrl,
      timeoutMs: config.providerTimeoutMs,
      perMinute: config.wecom.perRobotPerMinute,
      logger: logger.child({ provider: 'wecom' }),
    }),
    WEBHOOK: new SignedWebhookChannel({
      allowedHosts: config.webhook.allowedHosts,
      timeoutMs: config.providerTimeoutMs,
      logger: logger.child({ provider: 'webhook' }),
    }),
  };
}

/** SMS_PROVIDER picks one; loadConfig has already refused a provider whose settings are missing. */
function createSmsChannel(config: Config, logger: Logger): Channels['SMS'] {
  const { sms, providerTimeoutMs: timeoutMs } = config;
  switch (sms.provider) {
    case 'aliyun':
      return new AliyunSmsChannel({
        accessKeyId: sms.aliyun.accessKeyId!,
        accessKeySecret: sms.aliyun.accessKeySecret!,
        signName: sms.aliyun.signName!,
        templateCode: sms.aliyun.templateCode!,
        endpoint: sms.aliyun.endpoint,
        templateParam: sms.templateParam,
        timeoutMs,
        logger: logger.child({ provider: 'aliyun' }),
      });
    case 'tencent':
      return new TencentSmsChannel({
        secretId: sms.tencent.secretId!,
        secretKey: sms.tencent.secretKey!,
        sdkAppId: sms.tencent.sdkAppId!,
        signName: sms.tencent.signName!,
        templateId: sms.tencent.templateId!,
        region: sms.tencent.region,
        endpoint: sms.tencent.endpoint,
        templateParam: sms.templateParam,
        timeoutMs,
        logger: logger.child({ provider: 'tencent' }),
      });
    default:
      return new LogSmsChannel(logger.child({ provider: 'log' }));
  }
}

/** Waits for the channels that start something (the SMTP thread) to be ready to send. */
export async function readyChannels(channels: Channels): Promise<void> {
  await Promise.all(Object.values(channels).map((channel) => channel.ready?.()));
}

export async function closeChannels(channels: Channels): Promise<void> {
  await Promise.all(Object.values(channels).map((channel) => channel.close?.()));
}
