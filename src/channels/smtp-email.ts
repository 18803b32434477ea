import nodemailer, { type NodemailerError, type SMTPPoolOptions } from 'nodemailer';
import { parseConnectionUrl } from 'nodemailer/lib/shared';
import type { Logger } from '../logger';
import { ChannelError, type Channel, type EmailMessage, type SendContext, type SendResult } from './channel';
import { mailOptions } from './email-message';

export interface SmtpEmailOptions {
  /** smtp://[user:pass@]host[:port][?nodemailer options] or smtps://… */
  url: string;
  /** MAIL_FROM: the From header and the envelope sender. */
  from: string;
  /** SMTP_POOL_SIZE: most connections open at once. */
  poolSize: number;
  /** Connect and greeting timeout, unless the URL sets connectionTimeout/greetingTimeout. */
  timeoutMs: number;
}

/**
 * nodemailer pool options from SMTP_URL: scheme (smtps:// means TLS from the first byte), credentials
 * (percent-decoded) and any nodemailer option in the query (`?name=mail.example.com&tls.rejectUnauthorized=false`).
 * SMTP_POOL_SIZE always wins over a `maxConnections` in the URL; logging stays off so no message body reaches a log.
 */
export function smtpTransportOptions(options: Pick<SmtpEmailOptions, 'url' | 'poolSize' | 'timeoutMs'>): SMTPPoolOptions & {
  pool: true;
} {
  const fromUrl = parseConnectionUrl(options.url) as SMTPPoolOptions;
  return {
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    ...fromUrl,
    pool: true,
    maxConnections: options.poolSize,
    logger: false,
    debug: false,
    transactionLog: false,
  };
}

/** SMTP_URL without its password, for logs and banners. */
export function redactSmtpUrl(url: string): string {
  return url.replace(/^(smtps?:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

// Errors that end or prevent the connection without a reply from the server: the next attempt may well work.
const connectionCodes = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS', 'EPROTOCOL', 'EPROXY', 'EMAXLIMIT']);
// Problems with our own settings or the message itself: sending again cannot help.
const configurationCodes = new Set(['ECONFIG', 'ENOAUTH', 'EMAXRECIPIENTS', 'EREQUIRETLS', 'EENVELOPE', 'EMESSAGE', 'EOAUTH2']);

const replyLine = (error: NodemailerError) => (error.response ?? error.message).replace(/\s+/g, ' ').trim();

function kindOfReply(responseCode: number): 'retryable' | 'permanent' {
  return responseCode >= 500 && responseCode < 600 ? 'permanent' : 'retryable';
}

/**
 * How a failed send counts, and what `lastError` says:
 * - the server answered (responseCode set): 4xx retryable, 5xx permanent; code `SMTP_<reply code>`, message = its
 *   reply line; a rejected login is code `EAUTH` (permanent: the credentials in SMTP_URL are wrong);
 * - every recipient refused (EENVELOPE with rejectedErrors): retryable only if every refusal was 4xx; code from the
 *   first permanent refusal (else the first), message lists each address with its reply;
 * - no reply (connection refused or dropped, timeout, DNS, TLS): retryable, code = nodemailer's (ESOCKET, …).
 */
export function classifySmtpError(error: unknown): ChannelError {
  const failure = (error ?? {}) as NodemailerError;
  const code = typeof failure.code === 'string' ? failure.code : undefined;
  if (failure.name === 'AbortError' || code === 'EABORT') {
    return new ChannelError('retryable', 'EABORT', 'No answer from the SMTP server in time; the send was abandoned');
  }
  const rejected = failure.rejectedErrors ?? [];
  if (code === 'EENVELOPE' && rejected.length > 0) {
    const codes = rejected.map((item) => item.responseCode ?? 0);
    const allTransient = codes.every((value) => value >= 400 && value < 500);
    const decisive = allTransient ? codes[0] : (codes.find((value) => value >= 500) ?? codes.find((value) => value < 400) ?? 0);
    return new ChannelError(
      allTransient ? 'retryable' : 'permanent',
      decisive ? `SMTP_${decisive}` : 'EENVELOPE',
      `All recipients rejected: ${rejected.map((item) => `${item.recipient ?? '?'}: ${replyLine(item)}`).join('; ')}`,
    );
  }
  if (typeof failure.responseCode === 'number') {
    if (code === 'EAUTH') {
      return new ChannelError(
        kindOfReply(failure.responseCode),
        'EAUTH',
        `SMTP login rejected (check the user and password in SMTP_URL): ${replyLine(failure)}`,
      );
    }
    return new ChannelError(kindOfReply(failure.responseCode), `SMTP_${failure.responseCode}`, replyLine(failure));
  }
  if (code === 'EAUTH' || (code && configurationCodes.has(code))) {
    return new ChannelError('permanent', code, failure.message || code);
  }
  if (code && connectionCodes.has(code)) {
    return new ChannelError('retryable', code, `SMTP server unreachable: ${failure.message || code}`);
  }
  // Unknown failure without a server reply (the pool closing during shutdown, say): trying again is the safe side.
  return new ChannelError('retryable', code ?? 'ECONNECTION', failure.message || 'SMTP send failed');
}

/** Partially refused recipients, for the delivery's PARTIALLY_REJECTED note; undefined when all were accepted. */
export function rejectionNote(
  info: { accepted?: unknown[]; rejected?: unknown[]; rejectedErrors?: NodemailerError[] },
  limit = 2000,
): string | undefined {
  const rejected = (info.rejected ?? []).map(String);
  if (rejected.length === 0) return undefined;
  const errors = info.rejectedErrors ?? [];
  const total = rejected.length + (info.accepted?.length ?? 0);
  const details = rejected.map((address) => {
    const reply = errors.find((item) => item.recipient === address);
    return reply ? `${address}: ${replyLine(reply)}` : address;
  });
  const note = `${rejected.length} of ${total} recipients rejected: ${details.join('; ')}`;
  return note.length > limit ? `${note.slice(0, limit - 1)}…` : note;
}

/** Real email: one pooled nodemailer SMTP transport for the whole process. */
export class SmtpEmailChannel implements Channel<'EMAIL'> {
  readonly channel = 'EMAIL';
  readonly provider = 'smtp';
  readonly development = false;
  private readonly transport;

  constructor(
    private readonly options: SmtpEmailOptions,
    private readonly logger: Logger,
  ) {
    this.transport = nodemailer.createTransport(smtpTransportOptions(options));
    this.logger.info({ smtp: redactSmtpUrl(options.url), poolSize: options.poolSize }, 'email goes out over SMTP');
    // Connection-level trouble outside any send; a send's own failure reaches its caller instead.
    this.transport.on('error', (error: NodemailerError) => {
      this.logger.warn({ code: error.code, responseCode: error.responseCode }, `SMTP transport error: ${error.message}`);
    });
  }

  async send(message: EmailMessage, context: SendContext): Promise<SendResult> {
    let info;
    try {
      info = await this.transport.sendMail({
        ...mailOptions(message, this.options.from, context.deliveryId),
        signal: context.signal,
      });
    } catch (error) {
      throw classifySmtpError(error);
    }
    return { providerMessageId: info.messageId, note: rejectionNote(info) };
  }

  async close(): Promise<void> {
    this.transport.close();
  }
}
