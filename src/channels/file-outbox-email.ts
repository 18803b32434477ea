import fs from 'node:fs/promises';
import path from 'node:path';
import nodemailer from 'nodemailer';
import type { Channel, EmailMessage, SendContext, SendResult } from './channel';

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
    const info = await this.transport.sendMail({
      from: this.from,
      to: message.to,
      cc: message.cc,
      bcc: message.bcc,
      subject: message.subject,
      text: message.text,
      html: message.html,
    });
    await fs.mkdir(this.outboxDir, { recursive: true });
    const file = path.join(this.outboxDir, `${context.deliveryId}.eml`);
    await fs.writeFile(file, info.message as Buffer);
    return { providerMessageId: info.messageId };
  }
}
