/**
 * A webhook receiver as a Standard Webhooks consumer writes one: every request is verified with the `standardwebhooks`
 * package's own `Webhook.verify` (signature and the 5-minute timestamp window), never with the gateway's code. It
 * records each request (id, timestamp, verified or why not) and answers a scripted sequence of statuses: 500 then
 * 200, 410, 429 with Retry-After, a slow answer, a redirect.
 *
 * Used by the tests, and runnable by hand:
 *   npx tsx test/peers/webhook-receiver.ts --port 4030 --secret whsec_…
 */
import http from 'node:http';
import { Webhook } from 'standardwebhooks';
import { closeServer, listenLocal, runIfMain } from './peer-server';

export interface ScriptedAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long before answering (a slow receiver). */
  delayMs?: number;
}

export interface ReceivedWebhook {
  id?: string;
  timestamp?: string;
  signature?: string;
  contentType?: string;
  /** The raw body, as verified. */
  rawBody: string;
  /** The parsed payload when the signature checked out. */
  payload?: unknown;
  verified: boolean;
  /** The package's reason when it refused. */
  verifyError?: string;
  status: number;
  path: string;
  /** Query string as received (a token in the URL, say). */
  query: string;
  receivedAt: number;
}

export interface WebhookReceiver {
  url: string;
  port: number;
  requests: ReceivedWebhook[];
  /** Requests whose signature verified. */
  readonly verified: ReceivedWebhook[];
  /** The next answers, in order; once used up, 200 (or 401 for a request that did not verify). */
  script(...answers: (number | ScriptedAnswer)[]): void;
  /** Requests per webhook-id, in order (a retry keeps the id). */
  attemptsOf(id: string): ReceivedWebhook[];
  reset(): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(options: { secret: string; port?: number; host?: string; log?: (line: string) => void }): Promise<WebhookReceiver> {
  const webhook = new Webhook(options.secret);
  const requests: ReceivedWebhook[] = [];
  let answers: ScriptedAnswer[] = [];
  const hanging = new Set<http.ServerResponse>();

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const header = (name: string) => request.headers[name] as string | undefined;
      const url = new URL(request.url ?? '/', 'http://receiver.test');
      const record: ReceivedWebhook = {
        id: header('webhook-id'),
        timestamp: header('webhook-timestamp'),
        signature: header('webhook-signature'),
        contentType: header('content-type'),
        rawBody,
        verified: false,
        status: 0,
        path: url.pathname,
        query: url.search.slice(1),
        receivedAt: Date.now(),
      };
      try {
        record.payload = webhook.verify(rawBody, {
          'webhook-id': record.id ?? '',
          'webhook-timestamp': record.timestamp ?? '',
          'webhook-signature': record.signature ?? '',
        });
        record.verified = true;
      } catch (error) {
        record.verifyError = error instanceof Error ? error.message : String(error);
      }
      requests.push(record);
      const answer = answers.shift() ?? (record.verified ? { status: 200 } : { status: 401, body: 'signature not verified' });
      record.status = answer.status;
      options.log?.(`${record.id} ${record.verified ? 'verified' : `NOT verified (${record.verifyError})`} → ${answer.status}`);
      const reply = () => {
        hanging.delete(response);
        if (response.destroyed) return;
        response.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
        response.end(answer.body ?? '');
      };
      if (answer.delayMs) {
        hanging.add(response);
        setTimeout(reply, answer.delayMs);
      } else reply();
    });
  });
  const { url, port } = await listenLocal(server, options.port, options.host);

  return {
    url,
    port,
    requests,
    get verified() {
      return requests.filter((request) => request.verified);
    },
    script(...next) {
      answers.push(...next.map((answer) => (typeof answer === 'number' ? { status: answer } : answer)));
    },
    attemptsOf: (id) => requests.filter((request) => request.id === id),
    reset() {
      requests.length = 0;
      answers = [];
    },
    close: () => closeServer(server, hanging),
  };
}

runIfMain(import.meta.url, async () => {
  const arg = (name: string) => {
    const index = process.argv.indexOf(`--${name}`);
    return index > 0 ? process.argv[index + 1] : undefined;
  };
  const secret = arg('secret');
  if (!secret) throw new Error('usage: webhook-receiver.ts --port 4030 --secret whsec_…');
  const receiver = await startWebhookReceiver({ secret, port: Number(arg('port') ?? 4030), log: console.log });
  console.log(`webhook receiver on ${receiver.url}`);
});
