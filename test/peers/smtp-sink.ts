import { parseArgs } from 'node:util';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { runIfMain } from './peer-server';

/**
 * A real SMTP server (smtp-server) on loopback for tests and demos. Every message it accepts is parsed with mailparser
 * and kept in `messages`; failures can be injected at each stage of the SMTP conversation.
 *
 *   npx tsx test/peers/smtp-sink.ts --port 2525 [--host 127.0.0.1] [--user u --pass p] [--secure]
 */

export type SmtpSinkStage = 'connect' | 'mailFrom' | 'rcptTo' | 'data';

export interface SmtpSinkFailure {
  stage: SmtpSinkStage;
  /** Reply code: 421, 450, 452 (transient) or 550, 552, 554 (permanent); 421 also closes the connection. */
  code?: number;
  /** Never answer at this stage (a hung server); the connection stays open until the client gives up. */
  stall?: boolean;
  /** Reply text; a standard one for the code when omitted. */
  message?: string;
  /** `rcptTo` only: reject just these addresses (case-insensitive); every recipient when omitted. */
  recipients?: string[];
  /** How many messages (connections, for `connect`) to fail; until `clearFailures()` when omitted. */
  times?: number;
}

export interface SmtpSinkMessage {
  envelope: { mailFrom: string; rcptTo: string[] };
  parsed: ParsedMail;
  /** The X-Notify-Delivery-Id header, when present. */
  deliveryId?: string;
  /** Login name of an authenticated session. */
  user?: string;
  receivedAt: Date;
}

export interface SmtpSinkOptions {
  port?: number;
  host?: string;
  /** Implicit TLS (smtps://) with smtp-server's built-in self-signed certificate. */
  secure?: boolean;
  /** Require AUTH (PLAIN or LOGIN) with these credentials; without it AUTH is not offered at all. */
  auth?: { user: string; pass: string };
  /** Called with each message once it is parsed (the standalone mode prints it). */
  onMessage?: (message: SmtpSinkMessage) => void;
}

export interface SmtpSink {
  /** smtp://host:port, or smtps:// when `secure` (credentials, when the sink requires AUTH, are the caller's to add). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly running: boolean;
  /** What was accepted, newest last; kept across stop()/start(). */
  readonly messages: SmtpSinkMessage[];
  /** Connections accepted so far (including refused ones), across restarts. */
  readonly connectionCount: number;
  /** Connections open right now. */
  readonly openConnections: number;
  fail(failure: SmtpSinkFailure): void;
  clearFailures(): void;
  /** Messages carrying this X-Notify-Delivery-Id. */
  messagesFor(deliveryId: string): SmtpSinkMessage[];
  /** Stops listening and drops every open connection; the port stays reserved for start(). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * What arrived per delivery (X-Notify-Delivery-Id): the deliveries that arrived more than once with how many copies,
 * the extra copies in all, and the ids that are not among `expected` (there should be none).
 */
export function copiesAtSink(messages: readonly SmtpSinkMessage[], expected: readonly string[]) {
  const perDelivery = new Map<string, number>();
  for (const message of messages) perDelivery.set(message.deliveryId!, (perDelivery.get(message.deliveryId!) ?? 0) + 1);
  const known = new Set(expected);
  const duplicated = [...perDelivery].filter(([, count]) => count > 1);
  return {
    delivered: perDelivery.size,
    duplicated,
    duplicates: duplicated.reduce((sum, [, count]) => sum + count - 1, 0),
    unknown: [...perDelivery.keys()].filter((id) => !known.has(id)),
  };
}

const defaultReplies: Record<number, string> = {
  421: 'Service not available, closing transmission channel',
  450: 'Requested mail action not taken: mailbox unavailable',
  451: 'Requested action aborted: local error in processing',
  452: 'Requested action not taken: insufficient system storage',
  550: 'Requested action not taken: mailbox unavailable',
  552: 'Requested mail action aborted: exceeded storage allocation',
  553: 'Requested action not taken: mailbox name not allowed',
  554: 'Transaction failed',
};

interface Rule extends SmtpSinkFailure {
  remaining: number;
  /** Transactions (session id + transaction number) this rule already counted. */
  counted: Set<string>;
}

function smtpError(rule: Rule): Error & { responseCode: number } {
  const code = rule.code ?? 451;
  const error = new Error(rule.message ?? defaultReplies[code] ?? 'Rejected by the test sink') as Error & {
    responseCode: number;
  };
  error.responseCode = code;
  return error;
}

/** Answers the SMTP command: accepted, refused as the rule says, or (stall) not at all. */
function answer(rule: Rule | undefined, callback: (error?: Error) => void): void {
  if (rule?.stall) return;
  callback(rule ? smtpError(rule) : undefined);
}

export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const host = options.host ?? '127.0.0.1';
  const messages: SmtpSinkMessage[] = [];
  // By delivery id: suites poll messagesFor for thousands of ids while the sink answers the gateway on the same event
  // loop, and a scan per id (10,000 × 10,000) held its replies back for seconds, long enough for sends to time out.
  const byDelivery = new Map<string, SmtpSinkMessage[]>();
  let rules: Rule[] = [];
  let server: SMTPServer | undefined;
  let port = options.port ?? 0;
  let connectionCount = 0;

  /** The first rule for this stage that applies; counts it once per transaction (or connection). */
  function ruleFor(stage: SmtpSinkStage, key: string, address?: string): Rule | undefined {
    for (const rule of rules) {
      if (rule.stage !== stage) continue;
      if (address !== undefined && rule.recipients && !rule.recipients.some((r) => r.toLowerCase() === address.toLowerCase())) {
        continue;
      }
      if (rule.counted.has(key)) return rule;
      if (rule.remaining <= 0) continue;
      rule.remaining -= 1;
      rule.counted.add(key);
      return rule;
    }
    return undefined;
  }

  // Our own transaction numbering: smtp-server's does not advance after a refused MAIL FROM.
  const transactions = new Map<string, number>();
  let transactionCounter = 0;
  const newTransaction = (session: SMTPServerSession) => {
    transactions.set(session.id, ++transactionCounter);
    return transactionKey(session);
  };
  const transactionKey = (session: SMTPServerSession) => `${session.id}:${transactions.get(session.id) ?? 0}`;

  function createServer(): SMTPServer {
    const created = new SMTPServer({
      logger: false,
      secure: options.secure ?? false,
      disableReverseLookup: true,
      banner: 'notify-gateway test sink',
      authOptional: !options.auth,
      disabledCommands: options.auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
      authMethods: ['PLAIN', 'LOGIN'],
      // Tests stop the server while connections are open: do not wait 30 s for them.
      closeTimeout: 100,
      onConnect(session, callback) {
        connectionCount += 1;
        answer(ruleFor('connect', session.id), callback);
      },
      onClose(session) {
        transactions.delete(session.id);
      },
      onAuth(auth, _session, callback) {
        if (options.auth && auth.username === options.auth.user && auth.password === options.auth.pass) {
          callback(null, { user: auth.username });
          return;
        }
        callback(null, { message: 'Authentication credentials invalid', responseCode: 535 });
      },
      onMailFrom(_address, session, callback) {
        answer(ruleFor('mailFrom', newTransaction(session)), callback);
      },
      onRcptTo(address, session, callback) {
        answer(ruleFor('rcptTo', transactionKey(session), address.address), callback);
      },
      onData(stream, session, callback) {
        const rule = ruleFor('data', transactionKey(session));
        const envelope = {
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((recipient) => recipient.address),
        };
        const user = session.user as string | undefined;
        // A message still being parsed when stop() ran was never acknowledged: it must not count as received.
        const runningServer = server;
        simpleParser(stream)
          .then((parsed) => {
            if (server !== runningServer) return;
            if (rule) {
              answer(rule, callback);
              return;
            }
            const header = parsed.headers.get('x-notify-delivery-id');
            const message: SmtpSinkMessage = {
              envelope,
              parsed,
              deliveryId: typeof header === 'string' ? header : undefined,
              user,
              receivedAt: new Date(),
            };
            messages.push(message);
            if (message.deliveryId !== undefined) {
              const copies = byDelivery.get(message.deliveryId);
              if (copies) copies.push(message);
              else byDelivery.set(message.deliveryId, [message]);
            }
            options.onMessage?.(message);
            callback();
          })
          .catch((error: Error) => {
            stream.resume();
            callback(Object.assign(new Error(`Could not parse the message: ${error.message}`), { responseCode: 451 }));
          });
      },
    });
    // A client dropping its connection is routine here (tests stop the sink on purpose).
    created.on('error', () => {});
    return created;
  }

  async function start(): Promise<void> {
    if (server) return;
    const created = createServer();
    await new Promise<void>((resolve, reject) => {
      created.server.once('error', reject);
      created.listen(port, host, () => {
        created.server.off('error', reject);
        resolve();
      });
    });
    port = (created.server.address() as { port: number }).port;
    server = created;
  }

  async function stop(): Promise<void> {
    const current = server;
    if (!current) return;
    server = undefined;
    const closed = new Promise<void>((resolve) => current.close(() => resolve()));
    for (const connection of current.connections) connection._socket.destroy();
    await closed;
  }

  await start();

  const sink: SmtpSink = {
    get url() {
      return `${options.secure ? 'smtps' : 'smtp'}://${host}:${port}`;
    },
    host,
    get port() {
      return port;
    },
    get running() {
      return server !== undefined;
    },
    messages,
    get connectionCount() {
      return connectionCount;
    },
    get openConnections() {
      return server?.connections.size ?? 0;
    },
    fail(failure) {
      rules.push({ ...failure, remaining: failure.times ?? Number.POSITIVE_INFINITY, counted: new Set() });
    },
    clearFailures() {
      rules = [];
    },
    messagesFor(deliveryId) {
      return [...(byDelivery.get(deliveryId) ?? [])];
    },
    stop,
    start,
    close: stop,
  };
  return sink;
}

function addressList(value: ParsedMail['to']): string {
  if (!value) return '';
  return (Array.isArray(value) ? value : [value]).map((address) => address.text).join(', ');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '2525' },
      host: { type: 'string', default: '127.0.0.1' },
      user: { type: 'string' },
      secure: { type: 'boolean', default: false },
      pass: { type: 'string' },
    },
  });
  const auth = values.user ? { user: values.user, pass: values.pass ?? '' } : undefined;
  const sink = await startSmtpSink({
    port: Number(values.port),
    host: values.host,
    auth,
    secure: values.secure,
    onMessage(message) {
      const { parsed, envelope } = message;
      console.log(
        [
          `[${message.receivedAt.toISOString()}] message ${message.deliveryId ?? parsed.messageId ?? ''}`,
          `  envelope: ${envelope.mailFrom} -> ${envelope.rcptTo.join(', ')}`,
          `  From: ${parsed.from?.text ?? ''}`,
          `  To: ${addressList(parsed.to)}`,
          ...(parsed.cc ? [`  Cc: ${addressList(parsed.cc)}`] : []),
          `  Subject: ${parsed.subject ?? ''}`,
          `  Body: ${(parsed.text ?? '').length} characters of text${parsed.html ? ', with HTML' : ''}`,
        ].join('\n'),
      );
    },
  });
  const shown = auth ? sink.url.replace('://', `://${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.pass)}@`) : sink.url;
  // The built-in certificate is self-signed: the client has to be told to accept it.
  const query = values.secure ? '?tls.rejectUnauthorized=false' : '';
  console.log(`SMTP sink listening; start the gateway with SMTP_URL='${shown}${query}'`);
  const shutdown = () => void sink.close().then(() => process.exit(0));
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

runIfMain(import.meta.url, main);
