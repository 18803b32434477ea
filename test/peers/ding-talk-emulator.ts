/**
 * A local stand-in for DingTalk's custom group robot API (POST /robot/send), faithful where the gateway can get it
 * wrong: 加签 checked the way DingTalk checks it, the 1-hour timestamp window, 20 messages a minute per robot with a
 * 10-minute mute, the 20,000-byte body limit, and DingTalk's real answers (always HTTP 200, judged by errcode).
 *
 * Used by the tests, and runnable by hand for a demo:
 *   npx tsx test/peers/ding-talk-emulator.ts --port 4010 --robot TOKEN:SECRET
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { Socket } from 'node:net';
import { listenLocal, runIfMain } from './peer-server';

export interface DingTalkRobot {
  /** The 加签 secret (SEC…). Without one the robot does not check signatures. */
  secret?: string;
  /** 自定义关键词: when set, the message text must contain at least one. */
  keywords?: string[];
  /** IP 地址(段): when set, only these client addresses may send. */
  ipWhitelist?: string[];
}

export interface DingTalkEmulatorOptions {
  port?: number;
  host?: string;
  /** accessToken → secret, or the robot's full security settings. */
  robots?: Record<string, string | DingTalkRobot>;
  /** Messages per robot per sliding minute (DingTalk: 20). */
  perMinute?: number;
  /** How long a robot stays muted after going over (DingTalk: 10 minutes). */
  muteMs?: number;
  /** Allowed clock difference for `timestamp` (DingTalk: 1 hour). */
  timestampWindowMs?: number;
  /** The emulator's clock (tests move it instead of waiting). */
  now?: () => number;
  /** Called with one line per request (the command line prints them). */
  log?: (line: string) => void;
}

export interface ReceivedDingMessage {
  accessToken: string;
  /** `timestamp` as received (form-decoded). */
  timestamp?: string;
  /** `sign` after form decoding, as DingTalk compares it. */
  sign?: string;
  /** `sign` exactly as it appeared in the request URL, before decoding. */
  rawSign?: string;
  /** The request URL's query string, verbatim. */
  rawQuery: string;
  contentType?: string;
  body: any;
  bodyBytes: number;
  receivedAt: number;
}

export interface DingTalkRequestRecord {
  method: string;
  path: string;
  accessToken?: string;
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
  /** Answer this errcode with HTTP 200, as DingTalk does. */
  errcode?: number;
  errmsg?: string;
}

export interface DingTalkEmulator {
  /** Base URL: give it to the gateway as DINGTALK_BASE_URL. */
  url: string;
  port: number;
  /** Messages accepted (errcode 0), oldest first. */
  messages: ReceivedDingMessage[];
  /** Every request, answered or not, oldest first. */
  requests: DingTalkRequestRecord[];
  /** Requests answered with anything but success (errcode ≠ 0, HTTP error, hang). */
  readonly rejected: number;
  addRobot(accessToken: string, robot: string | DingTalkRobot): void;
  /** The next `times` requests to /robot/send get this fault instead of being processed. */
  failNext(fault: FaultSpec, times?: number): void;
  /** When the robot's mute ends, if it is muted. */
  mutedUntil(accessToken: string): number | undefined;
  /** Forget messages, requests, faults, rate windows and mutes (robots stay). */
  reset(): void;
  close(): Promise<void>;
}

const minuteMs = 60_000;
const maxBodyBytes = 20_000;

/** The most messages received within any 60-second window (DingTalk's limit is 20). */
export function busiestMinute(messages: readonly { receivedAt: number }[]): number {
  const sorted = messages.map((message) => message.receivedAt).sort((a, b) => a - b);
  let most = 0;
  for (let start = 0, end = 0; end < sorted.length; end++) {
    while (sorted[end] - sorted[start] >= minuteMs) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

/** DingTalk's answers, word for word where public reports quote them. */
const answers = {
  ok: [0, 'ok'],
  needsPost: [43002, '需要POST请求'],
  badContentType: [43004, '无效的HTTP HEADER Content-Type'],
  missingToken: [40035, '缺少参数 access_token'],
  emptyToken: [400101, 'access_token不存在'],
  unknownToken: [300001, 'token is not exist'],
  invalidTimestamp: [310000, 'invalid timestamp'],
  signNotMatch: [310000, 'sign not match'],
  keywords: [310000, 'keywords not in content'],
  tooLong: [460101, 'message too long, exceed 20000 bytes'],
  tooFast: [130101, 'send too fast, exceed 20 times per minute'],
  badJson: [40035, '缺少参数 json'],
  badMsgtype: [400105, '不支持的消息类型'],
  markdownTitle: [
    400402,
    '错误描述:参数 markdown --》 title 缺失，或者参数格式不正确; 解决方案:请填充上对应参数;参考链接:请参考本接口对应文档查看参数获取方式，或者在https://open.dingtalk.com/document/  搜索对应文档;',
  ],
  markdownText: [
    400403,
    '错误描述:参数 markdown --》 text 缺失，或者参数格式不正确; 解决方案:请填充上对应参数;参考链接:请参考本接口对应文档查看参数获取方式，或者在https://open.dingtalk.com/document/  搜索对应文档;',
  ],
} as const satisfies Record<string, readonly [number, string]>;

type Answer = readonly [number, string];

/** The emulator's own signature check, written apart from the gateway's so one bug cannot hide the other. */
function expectedSign(timestamp: string, secret: string): string {
  return crypto.createHmac('sha256', Buffer.from(secret, 'utf8')).update(Buffer.from(`${timestamp}\n${secret}`, 'utf8')).digest('base64');
}

function rawParam(rawQuery: string, name: string): string | undefined {
  for (const pair of rawQuery.split('&')) {
    const at = pair.indexOf('=');
    if ((at === -1 ? pair : pair.slice(0, at)) === name) return at === -1 ? '' : pair.slice(at + 1);
  }
  return undefined;
}

const nonEmptyString = (value: unknown) => typeof value === 'string' && value.length > 0;

/** Field checks DingTalk applies to each msgtype; undefined when the body is acceptable. */
function bodyProblem(body: any): Answer | undefined {
  if (!body || typeof body !== 'object') return answers.badJson;
  switch (body.msgtype) {
    case 'text':
      return nonEmptyString(body.text?.content) ? undefined : [40035, '缺少参数 text.content'];
    case 'markdown':
      if (!nonEmptyString(body.markdown?.title)) return answers.markdownTitle;
      return nonEmptyString(body.markdown?.text) ? undefined : answers.markdownText;
    case 'link':
      for (const field of ['title', 'text', 'messageUrl']) {
        if (!nonEmptyString(body.link?.[field])) return [40035, `缺少参数 link.${field}`];
      }
      return undefined;
    case 'actionCard': {
      const card = body.actionCard;
      for (const field of ['title', 'text']) {
        if (!nonEmptyString(card?.[field])) return [40035, `缺少参数 actionCard.${field}`];
      }
      const single = nonEmptyString(card.singleTitle) && nonEmptyString(card.singleURL);
      const buttons = Array.isArray(card.btns) && card.btns.length > 0;
      return single || buttons ? undefined : [40035, '缺少参数 actionCard.singleURL'];
    }
    case 'feedCard':
      return Array.isArray(body.feedCard?.links) && body.feedCard.links.length > 0 ? undefined : [40035, '缺少参数 feedCard.links'];
    default:
      return answers.badMsgtype;
  }
}

/** The text a keyword must appear in. */
function searchableText(body: any): string {
  const parts = [body.text?.content, body.markdown?.title, body.markdown?.text, body.link?.title, body.link?.text];
  parts.push(body.actionCard?.title, body.actionCard?.text);
  for (const link of body.feedCard?.links ?? []) parts.push(link?.title);
  return parts.filter((part) => typeof part === 'string').join('\n');
}

const clientIp = (socket: Socket) => (socket.remoteAddress ?? '').replace(/^::ffff:/, '');

export async function startDingTalkEmulator(options: DingTalkEmulatorOptions = {}): Promise<DingTalkEmulator> {
  const now = options.now ?? Date.now;
  const perMinute = options.perMinute ?? 20;
  const muteMs = options.muteMs ?? 10 * minuteMs;
  const windowMs = options.timestampWindowMs ?? 3_600_000;
  const log = options.log ?? (() => {});
  const robots = new Map<string, DingTalkRobot>();
  const sent = new Map<string, number[]>();
  const muted = new Map<string, number>();
  const faults: Fault[] = [];
  const sockets = new Set<Socket>();
  let rejected = 0;

  const addRobot = (accessToken: string, robot: string | DingTalkRobot) =>
    robots.set(accessToken, typeof robot === 'string' ? { secret: robot } : robot);
  for (const [token, robot] of Object.entries(options.robots ?? {})) addRobot(token, robot);

  const emulator = {} as DingTalkEmulator;
  const messages: ReceivedDingMessage[] = [];
  const requests: DingTalkRequestRecord[] = [];

  const server = http.createServer((request, response) => {
    const receivedAt = now();
    const [path, rawQuery = ''] = (request.url ?? '/').split(/\?(.*)/s, 2) as [string, string?];
    // Form rules, as DingTalk parses them: `+` is a space, so an unencoded Base64 sign no longer matches.
    const query = new URLSearchParams(rawQuery);
    const accessToken = query.get('access_token') ?? undefined;
    const record: DingTalkRequestRecord = {
      method: request.method ?? '',
      path,
      accessToken,
      remotePort: request.socket.remotePort,
      receivedAt,
    };
    requests.push(record);
    const label = accessToken ? `${accessToken.slice(0, 6)}…` : '(no token)';

    const reply = (status: number, body: string, contentType: string) => {
      record.status = status;
      response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
      response.end(body);
    };
    const answer = ([errcode, errmsg]: Answer, detail = '') => {
      record.errcode = errcode;
      record.errmsg = errmsg;
      if (errcode !== 0) rejected += 1;
      log(`${request.method} ${path} ${label} → errcode ${errcode} ${errmsg.slice(0, 60)}${detail}`);
      reply(200, JSON.stringify({ errcode, errmsg }), 'application/json;charset=utf-8');
    };

    if (path !== '/robot/send') {
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
        rejected += 1;
        if (fault.kind === 'hang') {
          log(`${request.method} ${path} ${label} → (injected) no answer`);
          return;
        }
        if (fault.kind === 'status') {
          log(`${request.method} ${path} ${label} → (injected) HTTP ${fault.status}`);
          reply(fault.status, `<html><body><h1>${fault.status}</h1>nginx</body></html>`, 'text/html');
          return;
        }
        rejected -= 1; // answer() counts it
        answer([fault.errcode, fault.errmsg], ' (injected)');
        return;
      }

      if (request.method !== 'POST') return answer(answers.needsPost);
      if (accessToken === undefined) return answer(answers.missingToken);
      if (accessToken === '') return answer(answers.emptyToken);
      const contentType = request.headers['content-type'];
      if (!/^application\/json\s*(;|$)/i.test(contentType ?? '')) return answer(answers.badContentType);
      const robot = robots.get(accessToken);
      if (!robot) return answer(answers.unknownToken);

      if (robot.secret !== undefined) {
        const timestamp = query.get('timestamp') ?? '';
        if (!/^\d+$/.test(timestamp) || Math.abs(receivedAt - Number(timestamp)) > windowMs) {
          return answer(answers.invalidTimestamp);
        }
        const sign = query.get('sign') ?? '';
        const expected = Buffer.from(expectedSign(timestamp, robot.secret));
        const given = Buffer.from(sign);
        if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
          return answer(answers.signNotMatch);
        }
      }
      if (robot.ipWhitelist && !robot.ipWhitelist.includes(clientIp(request.socket))) {
        return answer([310000, `ip ${clientIp(request.socket)} not in whitelist`]);
      }

      const raw = Buffer.concat(chunks);
      if (raw.length > maxBodyBytes) return answer(answers.tooLong, ` (${raw.length} bytes)`);
      let body: any;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return answer(answers.badJson);
      }
      const problem = bodyProblem(body);
      if (problem) return answer(problem);
      if (robot.keywords && !robot.keywords.some((keyword) => searchableText(body).includes(keyword))) {
        return answer(answers.keywords);
      }

      const mutedUntil = muted.get(accessToken);
      if (mutedUntil !== undefined && mutedUntil > receivedAt) return answer(answers.tooFast, ' (muted)');
      const recent = (sent.get(accessToken) ?? []).filter((at) => at > receivedAt - minuteMs);
      sent.set(accessToken, recent);
      if (recent.length >= perMinute) {
        muted.set(accessToken, receivedAt + muteMs);
        return answer(answers.tooFast, ` (muted for ${Math.round(muteMs / 1000)} s)`);
      }
      recent.push(receivedAt);
      messages.push({
        accessToken,
        timestamp: query.get('timestamp') ?? undefined,
        sign: query.get('sign') ?? undefined,
        rawSign: rawParam(rawQuery, 'sign'),
        rawQuery,
        contentType,
        body,
        bodyBytes: raw.length,
        receivedAt,
      });
      const preview = searchableText(body).replace(/\s+/g, ' ').slice(0, 60);
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
    addRobot,
    failNext(spec: FaultSpec, times = 1) {
      const fault: Fault = spec.hang
        ? { kind: 'hang' }
        : spec.status !== undefined
          ? { kind: 'status', status: spec.status }
          : { kind: 'errcode', errcode: spec.errcode ?? -1, errmsg: spec.errmsg ?? '系统繁忙' };
      for (let i = 0; i < times; i++) faults.push(fault);
    },
    mutedUntil(accessToken: string) {
      const until = muted.get(accessToken);
      return until !== undefined && until > now() ? until : undefined;
    },
    reset() {
      messages.length = 0;
      requests.length = 0;
      faults.length = 0;
      sent.clear();
      muted.clear();
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
  const robots: Record<string, string> = {};
  let port = 4010;
  let host = '127.0.0.1';
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i];
    if (flag === '--port') port = Number(value());
    else if (flag === '--host') host = value();
    else if (flag === '--robot') {
      const spec = value();
      const colon = spec.indexOf(':');
      if (colon <= 0) throw new Error(`--robot wants TOKEN:SECRET, got "${spec}"`);
      robots[spec.slice(0, colon)] = spec.slice(colon + 1);
    } else if (flag === '--help' || flag === '-h') {
      console.log('usage: npx tsx test/peers/ding-talk-emulator.ts [--port 4010] [--host 127.0.0.1] [--robot TOKEN:SECRET]...');
      process.exit(0);
    } else throw new Error(`unknown option ${argv[i]}`);
  }
  return { port, host, robots };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (Object.keys(args.robots).length === 0) {
    const token = crypto.randomBytes(32).toString('hex');
    args.robots[token] = `SEC${crypto.randomBytes(32).toString('hex')}`;
    console.log('No --robot given: made one up for this run.');
  }
  const time = () => new Date().toISOString().slice(11, 23);
  const emulator = await startDingTalkEmulator({ ...args, log: (line) => console.log(`${time()} ${line}`) });
  console.log(`DingTalk robot emulator listening on ${emulator.url}/robot/send`);
  console.log(`Point the gateway at it: DINGTALK_BASE_URL=${emulator.url}`);
  for (const [token, secret] of Object.entries(args.robots)) {
    console.log(`  robot accessToken=${token} secret=${secret}`);
  }
  console.log('Checks: POST only, JSON content type, known token, 加签 within ±1 h, 20 messages/min per robot (then muted 10 min), 20000-byte bodies.');
  const stop = async () => {
    console.log(`Stopping: ${emulator.messages.length} accepted, ${emulator.rejected} rejected.`);
    await emulator.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

runIfMain(import.meta.url, main);
