import type Mail from 'nodemailer/lib/mailer';
import type { EmailMessage } from './channel';

export const deliveryIdHeader = 'X-Notify-Delivery-Id';

/** The nodemailer message for an email delivery, the same for every email transport. */
export function mailOptions(message: EmailMessage, from: string, deliveryId: string): Mail.Options {
  return {
    from,
    to: message.to,
    cc: message.cc,
    bcc: message.bcc,
    subject: message.subject,
    text: message.text,
    html: message.html,
    headers: { [deliveryIdHeader]: deliveryId },
  };
}
