import type Mail from 'nodemailer/lib/mailer';
import type { EmailMessage } from './channel';

export const deliveryIdHeader = 'X-Notify-Delivery-Id';

/**
 * The Message-ID of every attempt of one delivery, from its id and the sender's domain: a retry carries the same one,
 * so a mailbox that receives a message twice (delivery is at least once) can tell it is the same message.
 */
export function messageIdFor(deliveryId: string, from: string): string {
  const domain = /@([^\s<>@]+)>?\s*$/.exec(from)?.[1] ?? 'notify-gateway.invalid';
  return `<${deliveryId}@${domain}>`;
}

/** The nodemailer message for an email delivery, the same for every email transport. */
export function mailOptions(message: EmailMessage, from: string, deliveryId: string): Mail.Options {
  return {
    messageId: messageIdFor(deliveryId, from),
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
