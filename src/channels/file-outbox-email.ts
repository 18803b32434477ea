import fs from 'node:fs/promises';
import path from 'node:path';
import nodemailer from 'nodemailer';
import type { Channel, EmailMessage, SendContext, SendResult } from './channel';
import { mailOptions } from './email-message';

/** Development transport: renders each message with nodemailer and writes it as `<delivery id>.eml`. */
export class FileOutboxEmailChannel implements Channel<'EMAIL'> {
  readonly channel = 'EMAIL';
  readonly provider = 'file-outbox';
  readonly development = true;
  private readonly transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });

  constructor(
    readonly outboxDir: string,
    private readonly from: string,
  ) {}

  async send(message: EmailMessage, context: SendContext): Promise<SendResult> {
    const info = await this.transport.sendMail(mailOptions(message, this.from, context.deliveryId));
    await fs.mkdir(this.outboxDir, { recursive: true });
    const file = path.join(this.outboxDir, `${context.deliveryId}.eml`);
    await fs.writeFile(file, info.message as Buffer);
    return { providerMessageId: info.messageId };
  }
}
