import crypto from 'node:crypto';
import type { Logger } from '../logger';
import { maskMobile } from '../logger';
import type { Channel, SendContext, SendResult, SmsMessage } from './channel';

/** Development transport: logs that an SMS would have gone out, without its content (a verification code). */
export class LogSmsChannel implements Channel<'SMS'> {
  readonly channel = 'SMS';
  readonly provider = 'log';
  readonly development = true;

  constructor(private readonly logger: Logger) {}

  async send(message: SmsMessage, context: SendContext): Promise<SendResult> {
    const providerMessageId = `log-${crypto.randomUUID()}`;
    this.logger.info(
      { deliveryId: context.deliveryId, mobile: maskMobile(message.mobile), template: message.template, providerMessageId },
      'development SMS provider: message not sent to any phone',
    );
    return { providerMessageId };
  }
}
