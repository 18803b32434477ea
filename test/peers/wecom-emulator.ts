/**
 * A local stand-in for the WeCom (企业微信) group robot API (POST /cgi-bin/webhook/send?key=…), faithful where the
 * gateway can get it wrong: unknown keys refused with 93000, the body checks (msgtype 40008, empty content 44004,
 * text over 2048 and markdown over 4096 bytes 40058), 20 messages a minute per robot (45009 over it), and WeCom's real
 * answers: always HTTP 200, judged by errcode, with errmsgs carrying WeCom's "hint" and "more info" tail.
 *
 * Used by the tests, and runnable by hand for a demo:
 *   npx tsx test/peers/wecom-emulator.ts --port 4020 --key 693a91f6-7f0e-4bc4-97a0-0ec2af5a5aaa
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { Socket } from 'node:net';
import { listenLocal, runIfMain } from './peer-server';

export interface WeComEmulatorOptions {
  port?: number;
  host?: string;
  /** The robot keys WeCom knows; any other key is answered 93000. */
  keys?: string[];
  /** Messages per robot per sliding minute (WeCom: 20). */
  perMinute?: number;
  /** The emulator's clock (tests move it instead of waiting). */
  now?: () => number;
  /** Called with one line per request (the command line prints them). */
  log?: (line: string) => void;
}

export interface ReceivedWeComMessage {
  key: string;
  contentType?: string;
  body: any;
  /** The bytes of `text.content` or `markdown.content`, as WeCom counts them. */
  contentBytes: number;
  receivedAt: number;
}

export interface WeComRequestRecord {
  method: string;
  path: string;
  key?: string;
  /** HTTP status answered, or undefined while hanging. */
  status?: number;
  errcode?: number;
  errmsg?: string;
  fault?: Fault['kind'];
  /** The client's port: the same port on consecutive requests means the connection was kept alive. */
  remotePort?: number;
  receivedAt: number;
}

export type Fault =
  | { kind: 'status'; status: number }
  | { kind: 'hang' }
  | { kind: 'errcode'; errcode: number; errmsg: string };

export interface FaultSpec {
  /** Answer this HTTP status (e.g. 502) with an HTML body. */
  status?: number;
  /** Read the request and never answer (for timeouts). */
  hang?: boolean;
  /** Answer this errcode with HTTP 200, as WeCom does. */
  errcode?: number;
  errmsg?: string;
}

export interface WeComEmulator {
  /** Base URL: give it to the gateway as WECOM_BASE_URL. */
  url: string;
  port: number;
  /** Messages accepted (errcode 0), oldest first. */
  messages: ReceivedWeComMessage[];
  /** Every request, answered or not, oldest first. */
  requests: WeComRequestRecord[];
  /** Requests answered with anything but success (errcode ≠ 0, HTTP error, hang). */
  readonly rejected: number;
  /** The most messages one robot had accepted within any sliding minute so far. */
  readonly busiestMinute: number;
  addKey(key: string): void;
  /** The next `times` requests to /cgi-bin/webhook/send get this fault instead of being processed. */
  failNext(fault: FaultSpec, times?: number): void;
  /** Forget messages, requests, faults and rate windows (keys stay). */
  reset(): void;
  close(): Promise<void>;
}

const minuteMs = 60_000;
export const weComTextLimitBytes = 2048;
export const weComMarkdownLimitBytes = 4096;

/** The most messages received within any 60-second window. */
export function busiestMinute(messages: readonly { receivedAt: number }[]): number {
  const sorted = messages.map((message) => message.receivedAt).sort((a, b) => a - b);
  let most = 0;
  for (let start = 0, end = 0; end < sorted.length; end++) {
    while (sorted[end] - sorted[start] >= minuteMs) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

type Answer = readonly [number, string];

/** WeCom's answers: the words before WeCom's ", hint: […], from ip: …, more info at …" tail. */
const answers = {
  ok: [0, 'ok'],
  invalidKey: [93000, 'invalid webhook url'],
  tooFast: [45009, 'api freq out of limit'],
  badMsgtype: [40008, 'invalid message type'],
  emptyContent: [44004, 'empty content'],
  badJson: [40058, 'Warning: wrong json format. invalid Request Parameter'],
  textTooLong: [40058, `text.content exceed max length ${weComTextLimitBytes}. invalid Request Parameter`],
  markdownTooLong: [40058, `markdown.content exceed max length ${weComMarkdownLimitBytes}. invalid Request Parameter`],
  badMentions: [40058, 'mentioned_list must be a list of string. invalid Request Parameter'],
} as const satisfies Record<string, Answer>;

/** WeCom appends this to every errmsg but "ok". */
function tail(errcode: number, ip: string): string {
  const hint = `${Math.floor(Date.now() / 1000)}_${Math.floor(Math.random() * 1000)}_${crypto.randomBytes(16).toString('hex')}`;
  return `, hint: [${hint}], from ip: ${ip}, more info at https://open.work.weixin.qq.com/devtool/query?e=${errcode}`;
}

const isStringList = (value: unknown) => value === undefined || (Array.isArray(value) && value.every((item) => typeof item === 'string'));

/** Field checks WeCom applies to each msgtype; undefined when the body is acceptable. */
function bodyProblem(body: any): Answer | undefined {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return answers.badJson;
  switch (body.msgtype) {
    case 'text': {
      const content = body.text?.content;
      if (typeof content !== 'string' || content.length === 0) return answers.emptyContent;
      if (Buffer.byteLength(content, 'utf8') > weComTextLimitBytes) return answers.textTooLong;
      if (!isStringList(body.text.mentioned_list) || !isStringList(body.text.mentioned_mobile_list)) return answers.badMentions;
      return undefined;
    }
    case 'markdown': {
      const content = body.markdown?.content;
      if (typeof content !== 'string' || content.length === 0) return answers.emptyContent;
      return Buffer.byteLength(content, 'utf8') > weComMarkdownLimitBytes ? answers.markdownTooLong : undefined;
    }
    default:
      return answers.badMsgtype;
  }
}

const clientIp = (socket: Socket) => (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
const contentOf = (body: any): string => body.text?.content ?? body.markdown?.content ?? '';

export async function startWeComEmulator(options: WeComEmulatorOptions = {}): Promise<WeComEmulator> {
  const now = options.now ?? Date.now;
  const perMinute = options.perMinute ?? 20;
  const log = options.log ?? (() => {});
  const keys = new Set(options.keys ?? []);
  const sent = new Map<string, number[]>();
  const faults: Fault[] = [];
  const sockets = new Set<Socket>();
  let rejected = 0;
  let busiest = 0;

  const emulator = {} as WeComEmulator;
  const messages: ReceivedWeComMessage[] = [];
  const requests: WeComRequestRecord[] = [];

  const server = http.createServer((request, response) => {
    const receivedAt = now();
    const [path, rawQuery = ''] = (request.url ?? '/').split(/\?(.*)/s, 2) as [string, string?];
    const key = new URLSearchParams(rawQuery).get('key') ?? undefined;
    const record: WeComRequestRecord = { method: request.method ?? '', path, key, remotePort: request.socket.remotePort, receivedAt };
    requests.push(record);
    const label = key ? `${key.slice(0, 8)}…` : '(no key)';

    const reply = (status: number, body: string, contentType: string) => {
      record.status = status;
      response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
      response.end(body);
    };
    const answer = ([errcode, words]: Answer, detail = '') => {
      const errmsg = errcode === 0 ? words : `${words}${tail(errcode, clientIp(request.socket))}`;
      record.errcode = errcode;
      record.errmsg = errmsg;
      if (errcode !== 0) rejected += 1;
      log(`${request.method} ${path} ${label} → errcode ${errcode} ${words}${detail}`);
      reply(200, JSON.stringify({ errcode, errmsg }), 'application/json; charset=UTF-8');
    };

    if (path !== '/cgi-bin/webhook/send') {
      rejected += 1;
      log(`${request.method} ${path} → 404`);
      reply(404, 'Not Found', 'text/plain');
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const fault = faults.shift();
      if (fault) {
        record.fault = fault.kind;
        if (fault.kind === 'hang') {
          rejected += 1;
          log(`${request.method} ${path} ${label} → (injected) no answer`);
          return;
        }
        if (fault.kind === 'status') {
          rejected += 1;
          log(`${request.method} ${path} ${label} → (injected) HTTP ${fault.status}`);
          reply(fault.status, `<html><body><h1>${fault.status}</h1>nginx</body></html>`, 'text/html');
          return;
        }
        answer([fault.errcode, fault.errmsg], ' (injected)');
        return;
      }

      if (!key || !keys.has(key)) return answer(answers.invalidKey);
      let body: any;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return answer(answers.badJson);
      }
      const problem = bodyProblem(body);
      if (problem) return answer(problem);

      const recent = (sent.get(key) ?? []).filter((at) => at > receivedAt - minuteMs);
      sent.set(key, recent);
      if (recent.length >= perMinute) return answer(answers.tooFast, ` (${recent.length}/${perMinute} this minute)`);
      recent.push(receivedAt);
      busiest = Math.max(busiest, recent.length);
      const content = contentOf(body);
      messages.push({
        key,
        contentType: request.headers['content-type'],
        body,
        contentBytes: Buffer.byteLength(content, 'utf8'),
        receivedAt,
      });
      const preview = content.replace(/\s+/g, ' ').slice(0, 60);
      answer(answers.ok, ` ${body.msgtype} "${preview}" (${recent.length}/${perMinute} this minute)`);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  const { url, port } = await listenLocal(server, options.port, options.host);

  Object.assign(emulator, {
    url,
    port,
    messages,
    requests,
    addKey(key: string) {
      keys.add(key);
    },
    failNext(spec: FaultSpec, times = 1) {
      const fault: Fault = spec.hang
        ? { kind: 'hang' }
        : spec.status !== undefined
          ? { kind: 'status', status: spec.status }
          : { kind: 'errcode', errcode: spec.errcode ?? -1, errmsg: spec.errmsg ?? 'system busy' };
      for (let i = 0; i < times; i++) faults.push(fault);
    },
    reset() {
      messages.length = 0;
      requests.length = 0;
      faults.length = 0;
      sent.clear();
      rejected = 0;
      busiest = 0;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
  Object.defineProperty(emulator, 'rejected', { get: () => rejected, enumerable: true });
  Object.defineProperty(emulator, 'busiestMinute', { get: () => busiest, enumerable: true });
  return emulator;
}

function parseArgs(argv: string[]) {
  const keys: string[] = [];
  let port = 4020;
  let host = '127.0.0.1';
  let perMinute = 20;
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i];
    if (flag === '--port') port = Number(value());
    else if (flag === '--host') host = value();
    else if (flag === '--per-minute') perMinute = Number(value());
    else if (flag === '--key') keys.push(value());
    else if (flag === '--help' || flag === '-h') {
      console.log('usage: npx tsx test/peers/wecom-emulator.ts [--port 4020] [--host 127.0.0.1] [--per-minute 20] [--key KEY]...');
      process.exit(0);
    } else throw new Error(`unknown option ${argv[i]}`);
  }
  return { port, host, perMinute, keys };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.keys.length === 0) {
    args.keys.push(crypto.randomUUID());
    console.log('No --key given: made one up for this run.');
  }
  const time = () => new Date().toISOString().slice(11, 23);
  const emulator = await startWeComEmulator({ ...args, log: (line) => console.log(`${time()} ${line}`) });
  console.log(`WeCom group robot emulator listening on ${emulator.url}/cgi-bin/webhook/send`);
  console.log(`Point the gateway at it: WECOM_BASE_URL=${emulator.url}`);
  for (const key of args.keys) console.log(`  robot key=${key}`);
  console.log(`Checks: known key (93000), msgtype text/markdown (40008), content present (44004), text ≤ ${weComTextLimitBytes} and markdown ≤ ${weComMarkdownLimitBytes} bytes (40058), ${args.perMinute} messages/min per robot (45009).`);
  const stop = async () => {
    console.log(`Stopping: ${emulator.messages.length} accepted, ${emulator.rejected} rejected.`);
    await emulator.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

runIfMain(import.meta.url, main);
