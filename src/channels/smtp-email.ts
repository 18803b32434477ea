import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { NodemailerError, SMTPPoolOptions } from 'nodemailer';
import { parseConnectionUrl } from 'nodemailer/lib/shared';
import type { Logger } from '../logger';
import { ChannelError, type Channel, type EmailMessage, type SendContext, type SendResult } from './channel';
import { mailOptions } from './email-message';
import type { FromSmtpWorker, SmtpFailure, SmtpSent, SmtpWorkerData, ToSmtpWorker } from './smtp-worker';

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

const replyLine = (error: NodemailerError | SmtpFailure) => (error.response ?? error.message).replace(/\s+/g, ' ').trim();

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
  const failure = (error ?? {}) as NodemailerError | SmtpFailure;
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
  info: { accepted?: unknown[]; rejected?: unknown[]; rejectedErrors?: (NodemailerError | SmtpFailure)[] },
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

/**
 * The worker's entry: the bundle's sibling (dist/smtp-worker.js, built with dist/main.js), or from source (tsx,
 * vitest) smtp-worker.ts loaded through tsx.
 */
function spawnSmtpWorker(data: SmtpWorkerData): Worker {
  const bundled = new URL('./smtp-worker.js', import.meta.url);
  const entry = fs.existsSync(bundled) ? bundled : new URL('./smtp-worker-source.mjs', import.meta.url);
  // Its garbage is short-lived (one message at a time per connection): a small young generation keeps the thread's
  // memory down (peak RSS of the 10,000-mail bench 188–191 MB instead of 212–224) at no measurable cost in throughput.
  return new Worker(entry, { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
}

interface PendingSend {
  resolve: (info: SmtpSent) => void;
  reject: (error: SmtpFailure) => void;
}

/**
 * Real email: one pooled nodemailer SMTP transport for the whole process, on a thread of its own (smtp-worker.ts):
 * composing MIME and talking SMTP cost as much CPU as everything else a send takes, and there they run beside the
 * event loop instead of on it. The worker starts with the channel, so that loading it does not eat into the first
 * attempt's deadline; should it die, the sends it had fail as retryable and the next send starts a new one.
 */
export class SmtpEmailChannel implements Channel<'EMAIL'> {
  readonly channel = 'EMAIL';
  readonly provider = 'smtp';
  readonly development = false;
  private worker?: Worker;
  /** Settles when the current worker has loaded (or has ended: then there is nothing to wait for). */
  private workerReady: Promise<void> = Promise.resolve();
  private readonly pending = new Map<number, PendingSend>();
  private nextId = 0;

  constructor(
    private readonly options: SmtpEmailOptions,
    private readonly logger: Logger,
  ) {
    this.logger.info({ smtp: redactSmtpUrl(options.url), poolSize: options.poolSize }, 'email goes out over SMTP');
    this.started();
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = spawnSmtpWorker({ transport: smtpTransportOptions(this.options) });
    let loaded!: () => void;
    this.workerReady = new Promise((resolve) => (loaded = resolve));
    worker.once('exit', () => loaded());
    worker.on('message', (message: FromSmtpWorker) => {
      if (message.type === 'ready') {
        // Loaded: from now on only sends hold the process open (see send), an idle worker does not.
        if (this.pending.size === 0) worker.unref();
        loaded();
      } else if (message.type === 'sent' || message.type === 'failed') {
        const pending = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (this.pending.size === 0) worker.unref();
        if (message.type === 'sent') pending?.resolve(message.info);
        else pending?.reject(message.error);
      } else if (message.type === 'transport-error') {
        // Connection-level trouble outside any send; a send's own failure reaches its caller instead.
        const { error } = message;
        this.logger.warn({ code: error.code, responseCode: error.responseCode }, `SMTP transport error: ${error.message}`);
      }
    });
    const ended = (reason: string) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const pending of this.pending.values()) pending.reject({ code: 'ECONNECTION', message: `SMTP worker stopped: ${reason}` });
      this.pending.clear();
    };
    worker.on('error', (error) => {
      this.logger.error({ err: error }, 'SMTP worker failed');
      ended(error.message);
    });
    worker.on('exit', (code) => ended(`exit code ${code}`));
    this.worker = worker;
    return worker;
  }

  async send(message: EmailMessage, context: SendContext): Promise<SendResult> {
    const worker = this.started();
    const id = (this.nextId += 1);
    const post = (request: ToSmtpWorker) => worker.postMessage(request);
    const abort = () => post({ type: 'abort', id });
    let info;
    try {
      info = await new Promise<SmtpSent>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        // Held while sends are out, so that a process with nothing else to do still waits for their answers.
        if (this.pending.size === 1) worker.ref();
        post({ type: 'send', id, mail: mailOptions(message, this.options.from, context.deliveryId) });
        if (context.signal.aborted) abort();
        else context.signal.addEventListener('abort', abort, { once: true });
      });
    } catch (error) {
      throw classifySmtpError(error);
    } finally {
      context.signal.removeEventListener('abort', abort);
    }
    return { providerMessageId: info.messageId, note: rejectionNote(info) };
  }

  ready(): Promise<void> {
    return this.workerReady;
  }

  async close(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    const closed = new Promise<void>((resolve) => {
      worker.on('message', (message: FromSmtpWorker) => message.type === 'closed' && resolve());
      worker.once('exit', () => resolve());
    });
    worker.postMessage({ type: 'close' } satisfies ToSmtpWorker);
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    // Its exit fails whatever was still out (nothing, after a graceful stop) as retryable.
    await worker.terminate();
  }
}
