/**
 * A local stand-in for the Feishu/Lark custom bot webhook (POST /open-apis/bot/v2/hook/{token}), faithful where the
 * gateway can get it wrong: 签名校验 checked the way Feishu checks it (the string-to-sign is the HMAC key, the message
 * is empty) with the 1-hour timestamp window, 100 messages a minute AND 5 a second per bot (11232 past either), the
 * 20 KB body limit, keywords and IP allow-lists, and Feishu's real answers: `code`/`msg`, HTTP 200 even for refusals
 * (an unparseable body gets HTTP 400 with 9499).
 *
 * Used by the tests, and runnable by hand for a demo:
 *   npx tsx test/peers/feishu-emulator.ts --port 4020 --bot TOKEN:SECRET   (or --bot TOKEN for a bot without signing)
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { Socket } from 'node:net';
import { listenLocal, runIfMain } from './peer-server';

export interface FeishuBot {
  /** The 签名校验 secret. Without one the bot does not check signatures. */
  secret?: string;
  /** 自定义关键词: when set, the message text must contain at least one. */
  keywords?: string[];
  /** IP 白名单: when set, only these client addresses may send. */
  ipWhitelist?: string[];
}

export interface FeishuEmulatorOptions {
  port?: number;
  host?: string;
  /** token → secret ('' or undefined: no signing), or the bot's full security settings. */
  bots?: Record<string, string | undefined | FeishuBot>;
  /** Messages per bot per sliding minute (Feishu: 100). */
  perMinute?: number;
  /** Messages per bot per sliding second (Feishu: 5). */
  perSecond?: number;
  /** Allowed clock difference for `timestamp`, in ms (Feishu: 1 hour). */
  timestampWindowMs?: number;
  /** The emulator's clock (tests move it instead of waiting). */
  now?: () => number;
  /** Called with one line per request (the command line prints them). */
  log?: (line: string) => void;
}

export interface ReceivedFeishuMessage {
  token: string;
  /** `timestamp` and `sign` as they were in the body (removed from `body`). */
  timestamp?: string;
  sign?: string;
  /** True when the bot has a secret and the signature checked out (every accepted message of such a bot). */
  signatureVerified: boolean;
  contentType?: string;
  /** The body without `timestamp` and `sign`. */
  body: any;
  bodyBytes: number;
  receivedAt: number;
}

export interface FeishuRequestRecord {
  method: string;
  path: string;
  token?: string;
  /** HTTP status answered, or undefined while hanging. */
  status?: number;
  code?: number;
  msg?: string;
  fault?: FeishuFault['kind'];
  receivedAt: number;
}

export type FeishuFault =
  | { kind: 'status'; status: number }
  | { kind: 'hang' }
  | { kind: 'code'; code: number; msg: string; status: number };

export interface FeishuFaultSpec {
  /** Answer this HTTP status (e.g. 502) with an HTML body. */
  status?: number;
  /** Read the request and never answer (for timeouts). */
  hang?: boolean;
  /** Answer this code in Feishu's JSON, with HTTP 200 as Feishu does (or with `status` when both are given). */
  code?: number;
  msg?: string;
}

export interface FeishuEmulator {
  /** Base URL: give it to the gateway as FEISHU_BASE_URL. */
  url: string;
  port: number;
  /** Messages accepted (code 0), oldest first. */
  messages: ReceivedFeishuMessage[];
  /** Every request, answered or not, oldest first. */
  requests: FeishuRequestRecord[];
  /** Requests answered with anything but success (code ≠ 0, HTTP error, hang). */
  readonly rejected: number;
  addBot(token: string, bot: string | undefined | FeishuBot): void;
  /** The next `times` requests to a hook get this fault instead of being processed. */
  failNext(fault: FeishuFaultSpec, times?: number): void;
  /** Forget messages, requests, faults and rate windows (bots stay). */
  reset(): void;
  close(): Promise<void>;
}

const secondMs = 1000;
const minuteMs = 60_000;
/** "请求体大小不能超过 20 K". */
export const feishuEmulatorMaxBodyBytes = 20 * 1024;
const hookPath = /^\/open-apis\/bot\/v2\/hook\/([^/?]*)$/;

/** The most messages received within any window of `windowMs` (Feishu: 5 a second, 100 a minute). */
export function busiestWindow(messages: readonly { receivedAt: number }[], windowMs: number): number {
  const sorted = messages.map((message) => message.receivedAt).sort((a, b) => a - b);
  let most = 0;
  for (let start = 0, end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= windowMs) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

type Answer = readonly [number, string];

/** Feishu's answers, word for word where public reports quote them. */
export const feishuAnswers = {
  badRequest: [9499, 'Bad Request'],
  badContent: [9499, 'Bad Request: fail to parse content'],
  rateLimited: [11232, 'frequency limited psm[lark.oapi.app_platform_runtime]appID[1]'],
  tokenInvalid: [19001, 'param invalid: incoming webhook access token invalid'],
  msgType: [19002, 'params error, msg_type need'],
  signFail: [19021, 'sign match fail or timestamp is not within one hour from current time'],
  ipNotAllowed: [19022, 'Ip Not Allowed'],
  keywords: [19024, 'Key Words Not Found'],
  // The public report of 19036 says "of 30KB" for cards; the code and wording for the 20 KB body limit are assumed.
  tooLarge: [19036, 'The message exceeds the size limit'],
} as const satisfies Record<string, Answer>;

/** The emulator's own signature check, written apart from the gateway's so one bug cannot hide the other. */
function expectedSign(timestamp: string, secret: string): string {
  const key = Buffer.concat([Buffer.from(timestamp, 'utf8'), Buffer.from([0x0a]), Buffer.from(secret, 'utf8')]);
  return crypto.createHmac('sha256', key).update(Buffer.alloc(0)).digest('base64');
}

const nonEmptyString = (value: unknown) => typeof value === 'string' && value.trim().length > 0;

/** Field checks per msg_type; undefined when the body is acceptable. */
function bodyProblem(body: any): Answer | undefined {
  switch (body.msg_type) {
    case 'text':
      return nonEmptyString(body.content?.text) ? undefined : feishuAnswers.badContent;
    case 'post': {
      const post = body.content?.post;
      const languages = post && typeof post === 'object' ? Object.values(post) : [];
      const ok = languages.some((language: any) => Array.isArray(language?.content) && language.content.every(Array.isArray));
      return ok ? undefined : feishuAnswers.badContent;
    }
    case 'interactive': {
      const card = body.card;
      return card && typeof card === 'object' && Array.isArray(card.elements) ? undefined : feishuAnswers.badContent;
    }
    case 'image':
    case 'share_chat':
      return body.content && typeof body.content === 'object' ? undefined : feishuAnswers.badContent;
    default:
      return feishuAnswers.msgType;
  }
}

/** The text a keyword must appear in (and a log line shows). */
export function feishuText(body: any): string {
  const parts: unknown[] = [body.content?.text];
  for (const language of Object.values(body.content?.post ?? {}) as any[]) {
    parts.push(language?.title);
    for (const paragraph of language?.content ?? []) for (const element of paragraph ?? []) parts.push(element?.text);
  }
  parts.push(body.card?.header?.title?.content);
  for (const element of body.card?.elements ?? []) parts.push(element?.content, element?.text?.content);
  return parts.filter((part) => typeof part === 'string').join('\n');
}

const clientIp = (socket: Socket) => (socket.remoteAddress ?? '').replace(/^::ffff:/, '');

export async function startFeishuEmulator(options: FeishuEmulatorOptions = {}): Promise<FeishuEmulator> {
  const now = options.now ?? Date.now;
  const perMinute = options.perMinute ?? 100;
  const perSecond = options.perSecond ?? 5;
  const timestampWindowMs = options.timestampWindowMs ?? 3_600_000;
  const log = options.log ?? (() => {});
  const bots = new Map<string, FeishuBot>();
  const sent = new Map<string, number[]>();
  const faults: FeishuFault[] = [];
  const sockets = new Set<Socket>();
  let rejected = 0;

  const addBot = (token: string, bot: string | undefined | FeishuBot) =>
    bots.set(token, typeof bot === 'object' ? bot : { secret: bot || undefined });
  for (const [token, bot] of Object.entries(options.bots ?? {})) addBot(token, bot);

  const emulator = {} as FeishuEmulator;
  const messages: ReceivedFeishuMessage[] = [];
  const requests: FeishuRequestRecord[] = [];

  const server = http.createServer((request, response) => {
    const receivedAt = now();
    const path = (request.url ?? '/').split('?')[0]!;
    const match = hookPath.exec(path);
    const token = match ? decodeURIComponent(match[1]!) : undefined;
    const record: FeishuRequestRecord = { method: request.method ?? '', path: match ? '/open-apis/bot/v2/hook/…' : path, token, receivedAt };
    requests.push(record);
    const label = token ? `${token.slice(0, 6)}…` : '(no token)';

    const reply = (status: number, body: string, contentType: string) => {
      record.status = status;
      response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
      response.end(body);
    };
    const answer = ([code, msg]: Answer, detail = '', status = 200) => {
      record.code = code;
      record.msg = msg;
      if (code !== 0) rejected += 1;
      log(`${request.method} hook ${label} → code ${code} ${msg.slice(0, 60)}${detail}`);
      // Success carries the older StatusCode/StatusMessage too, as Feishu still sends them.
      const body = code === 0 ? { StatusCode: 0, StatusMessage: 'success', code: 0, data: {}, msg: 'success' } : { code, data: {}, msg };
      reply(status, JSON.stringify(body), 'application/json; charset=utf-8');
    };

    if (!match) {
      rejected += 1;
      log(`${request.method} ${path} → 404`);
      reply(404, '404 page not found', 'text/plain; charset=utf-8');
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
          log(`${request.method} hook ${label} → (injected) no answer`);
          return;
        }
        if (fault.kind === 'status') {
          rejected += 1;
          log(`${request.method} hook ${label} → (injected) HTTP ${fault.status}`);
          reply(fault.status, `<html><body><h1>${fault.status}</h1>nginx</body></html>`, 'text/html');
          return;
        }
        answer([fault.code, fault.msg], ' (injected)', fault.status);
        return;
      }

      if (request.method !== 'POST') return answer(feishuAnswers.badRequest, '', 400);
      const bot = token ? bots.get(token) : undefined;
      if (!bot) return answer(feishuAnswers.tokenInvalid);
      const raw = Buffer.concat(chunks);
      if (raw.length > feishuEmulatorMaxBodyBytes) return answer(feishuAnswers.tooLarge, ` (${raw.length} bytes)`);
      let body: any;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return answer(feishuAnswers.badRequest, ' (not JSON)', 400);
      }
      if (!body || typeof body !== 'object' || Array.isArray(body)) return answer(feishuAnswers.badRequest, '', 400);
      const { timestamp, sign, ...message } = body;

      if (bot.secret !== undefined) {
        // Seconds, as a string or a number; a millisecond timestamp lands 50 years off and fails the window.
        const seconds = typeof timestamp === 'number' || (typeof timestamp === 'string' && /^\d+$/.test(timestamp)) ? Number(timestamp) : Number.NaN;
        if (!Number.isFinite(seconds) || Math.abs(receivedAt - seconds * 1000) > timestampWindowMs) {
          return answer(feishuAnswers.signFail, ' (timestamp)');
        }
        const expected = Buffer.from(expectedSign(String(timestamp), bot.secret));
        const given = Buffer.from(typeof sign === 'string' ? sign : '');
        if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
          return answer(feishuAnswers.signFail, ' (sign)');
        }
      }
      if (bot.ipWhitelist && !bot.ipWhitelist.includes(clientIp(request.socket))) return answer(feishuAnswers.ipNotAllowed);
      const problem = bodyProblem(message);
      if (problem) return answer(problem);
      if (bot.keywords && !bot.keywords.some((keyword) => feishuText(message).includes(keyword))) {
        return answer(feishuAnswers.keywords);
      }

      const recent = (sent.get(token!) ?? []).filter((at) => at > receivedAt - minuteMs);
      sent.set(token!, recent);
      const lastSecond = recent.filter((at) => at > receivedAt - secondMs).length;
      if (recent.length >= perMinute || lastSecond >= perSecond) {
        return answer(feishuAnswers.rateLimited, ` (${lastSecond} this second, ${recent.length} this minute)`);
      }
      recent.push(receivedAt);
      messages.push({
        token: token!,
        timestamp: timestamp === undefined ? undefined : String(timestamp),
        sign: typeof sign === 'string' ? sign : undefined,
        signatureVerified: bot.secret !== undefined,
        contentType: request.headers['content-type'],
        body: message,
        bodyBytes: raw.length,
        receivedAt,
      });
      const preview = feishuText(message).replace(/\s+/g, ' ').slice(0, 60);
      answer([0, 'success'], ` ${message.msg_type} "${preview}" (${recent.length}/${perMinute} this minute)`);
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
    addBot,
    failNext(spec: FeishuFaultSpec, times = 1) {
      const fault: FeishuFault = spec.hang
        ? { kind: 'hang' }
        : spec.code === undefined && spec.status !== undefined
          ? { kind: 'status', status: spec.status }
          : { kind: 'code', code: spec.code ?? 11232, msg: spec.msg ?? feishuAnswers.rateLimited[1], status: spec.status ?? 200 };
      for (let i = 0; i < times; i++) faults.push(fault);
    },
    reset() {
      messages.length = 0;
      requests.length = 0;
      faults.length = 0;
      sent.clear();
      rejected = 0;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
  Object.defineProperty(emulator, 'rejected', { get: () => rejected, enumerable: true });
  return emulator;
}

function parseArgs(argv: string[]) {
  const bots: Record<string, string | undefined> = {};
  let port = 4020;
  let host = '127.0.0.1';
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split(/=(.*)/s, 2) as [string, string?];
    const value = () => inline ?? argv[++i]!;
    if (flag === '--port') port = Number(value());
    else if (flag === '--host') host = value();
    else if (flag === '--bot') {
      const spec = value();
      const colon = spec.indexOf(':');
      if (colon === 0) throw new Error(`--bot wants TOKEN or TOKEN:SECRET, got "${spec}"`);
      if (colon === -1) bots[spec] = undefined;
      else bots[spec.slice(0, colon)] = spec.slice(colon + 1);
    } else if (flag === '--help' || flag === '-h') {
      console.log('usage: npx tsx test/peers/feishu-emulator.ts [--port 4020] [--host 127.0.0.1] [--bot TOKEN[:SECRET]]...');
      process.exit(0);
    } else throw new Error(`unknown option ${argv[i]}`);
  }
  return { port, host, bots };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (Object.keys(args.bots).length === 0) {
    args.bots[crypto.randomUUID()] = crypto.randomBytes(16).toString('base64url');
    console.log('No --bot given: made one up for this run.');
  }
  const time = () => new Date().toISOString().slice(11, 23);
  const emulator = await startFeishuEmulator({ ...args, log: (line) => console.log(`${time()} ${line}`) });
  console.log(`Feishu bot emulator listening on ${emulator.url}/open-apis/bot/v2/hook/<token>`);
  console.log(`Point the gateway at it: FEISHU_BASE_URL=${emulator.url}`);
  for (const [token, secret] of Object.entries(args.bots)) {
    console.log(`  bot token=${token}${secret ? ` secret=${secret}` : ' (no signing)'}`);
  }
  console.log('Checks: POST only, known token, 签名校验 within ±1 h, 100 messages/min and 5/s per bot (11232), 20 KB bodies.');
  const stop = async () => {
    console.log(`Stopping: ${emulator.messages.length} accepted, ${emulator.rejected} rejected.`);
    await emulator.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

runIfMain(import.meta.url, main);
