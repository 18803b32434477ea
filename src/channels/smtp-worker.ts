// The SMTP pool's own thread: nodemailer builds each MIME message and drives the SMTP conversations here, so that
// neither delays the event loop that answers API callers and records deliveries. See SmtpEmailChannel.
import { parentPort, workerData } from 'node:worker_threads';
import nodemailer, { type NodemailerError, type SMTPPoolOptions } from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer';

export interface SmtpWorkerData {
  transport: SMTPPoolOptions & { pool: true };
}

/** The fields of a nodemailer error that classifySmtpError reads: what crosses the thread boundary. */
export interface SmtpFailure {
  name?: string;
  code?: string;
  message: string;
  response?: string;
  responseCode?: number;
  recipient?: string;
  rejectedErrors?: SmtpFailure[];
}

export interface SmtpSent {
  messageId: string;
  accepted: string[];
  rejected: string[];
  rejectedErrors?: SmtpFailure[];
}

export type ToSmtpWorker = { type: 'send'; id: number; mail: Mail.Options } | { type: 'abort'; id: number } | { type: 'close' };

export type FromSmtpWorker =
  | { type: 'sent'; id: number; info: SmtpSent }
  | { type: 'failed'; id: number; error: SmtpFailure }
  | { type: 'transport-error'; error: SmtpFailure }
  | { type: 'ready' }
  | { type: 'closed' };

function plainFailure(error: unknown): SmtpFailure {
  const failure = (error ?? {}) as NodemailerError & { recipient?: string };
  return {
    name: failure.name,
    code: typeof failure.code === 'string' ? failure.code : undefined,
    message: String(failure.message ?? error),
    response: failure.response,
    responseCode: failure.responseCode,
    recipient: failure.recipient,
    rejectedErrors: failure.rejectedErrors?.map(plainFailure),
  };
}

const addresses = (list: unknown[] | undefined) => (list ?? []).map((item) => (typeof item === 'string' ? item : String((item as { address?: string }).address ?? item)));

if (parentPort) {
  const port = parentPort;
  const { transport: options } = workerData as SmtpWorkerData;
  const transport = nodemailer.createTransport(options);
  const aborts = new Map<number, AbortController>();
  const post = (message: FromSmtpWorker) => port.postMessage(message);

  transport.on('error', (error: NodemailerError) => post({ type: 'transport-error', error: plainFailure(error) }));
  post({ type: 'ready' });

  port.on('message', (message: ToSmtpWorker) => {
    if (message.type === 'send') {
      const abort = new AbortController();
      aborts.set(message.id, abort);
      transport.sendMail({ ...message.mail, signal: abort.signal }).then(
        (info) =>
          post({
            type: 'sent',
            id: message.id,
            info: {
              messageId: info.messageId,
              accepted: addresses(info.accepted),
              rejected: addresses(info.rejected),
              rejectedErrors: (info as { rejectedErrors?: unknown[] }).rejectedErrors?.map(plainFailure),
            },
          }),
        (error: unknown) => post({ type: 'failed', id: message.id, error: plainFailure(error) }),
      ).finally(() => aborts.delete(message.id));
    } else if (message.type === 'abort') {
      aborts.get(message.id)?.abort();
    } else {
      transport.close();
      post({ type: 'closed' });
      port.close();
    }
  });
}
