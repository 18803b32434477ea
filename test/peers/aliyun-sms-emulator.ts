import crypto from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { closeServer, listenLocal, runIfMain } from './peer-server';

/**
 * A local Alibaba Cloud SMS (Dysmsapi 2017-05-25) for tests and demos. It checks requests the way the RPC gateway
 * does (access key, timestamp window, signature v1, nonce reuse), validates SendSms parameters, applies the default
 * per-number flow control, and answers Aliyun's real success, business-error (HTTP 200) and gateway-error
 * (HTTP 400/404 with RequestId, HostId, Code, Message, Recommend) bodies.
 *
 *   npx tsx test/peers/aliyun-sms-emulator.ts --port 4020 --key ID:SECRET [--host 127.0.0.1] [--no-limit]
 *
 * By hand, faults are injected with POST /_emulator/fault {"code":"isp.SYSTEM_ERROR","times":1}
 * (or {"httpStatus":503} or {"hang":true}); GET /_emulator/messages lists what was received.
 */

export type AliyunFault =
  | { code: string; message?: string; status?: number }
  | { httpStatus: number; body?: string }
  | { hang: true };

export interface AliyunSmsRequestRecord {
  method: string;
  accessKeyId?: string;
  /** PhoneNumbers as received. */
  phone?: string;
  signName?: string;
  templateCode?: string;
  /** TemplateParam decoded (undefined when absent or not JSON). */
  templateParam?: Record<string, unknown>;
  templateParamRaw?: string;
  outId?: string;
  /** Signature as received. */
  signature?: string;
  signatureNonce?: string;
  timestamp?: string;
  /** Every parameter as received (decoded). */
  params: Record<string, string>;
  /** The Code answered: OK or the error. */
  code: string;
  httpStatus: number;
  bizId?: string;
  receivedAt: Date;
}

export interface AliyunSmsEmulatorOptions {
  accessKeyId: string;
  accessKeySecret: string;
  port?: number;
  host?: string;
  /**
   * Per sign name and number, like Aliyun's defaults for verification codes: 1 a minute, 5 an hour, 10 a day.
   * `false` disables it.
   */
  limits?: false | { perMinute?: number; perHour?: number; perDay?: number };
  /** Approved sign names; any when omitted. */
  signNames?: string[];
  /** Approved templates and their variables; any template when omitted. */
  templates?: Record<string, string[]>;
  /** The emulator's clock (to test the 15-minute window). */
  now?: () => number;
  onRequest?: (record: AliyunSmsRequestRecord) => void;
}

export interface AliyunSmsEmulator {
  readonly url: string;
  readonly port: number;
  /** Messages accepted for sending, newest last. */
  readonly messages: AliyunSmsRequestRecord[];
  /** Every SendSms request, accepted or not, newest last. */
  readonly requests: AliyunSmsRequestRecord[];
  /** Answers the next `times` correctly signed requests with this fault instead of processing them. */
  failNext(fault: AliyunFault, times?: number): void;
  /** Forgets messages, requests, nonces, flow-control counters and pending faults. */
  reset(): void;
  close(): Promise<void>;
}

const hostId = 'dysmsapi.aliyuncs.com';
const timestampWindowMs = 15 * 60_000;

/** Gateway-level errors: HTTP status and Aliyun's message. */
const gatewayErrors: Record<string, { status: number; message: string }> = {
  SignatureDoesNotMatch: { status: 400, message: 'Specified signature is not matched with our calculation.' },
  'InvalidAccessKeyId.NotFound': { status: 404, message: 'Specified access key is not found.' },
  'InvalidAccessKeyId.Inactive': { status: 400, message: 'Specified access key is disabled.' },
  'InvalidTimeStamp.Expired': { status: 400, message: 'Specified time stamp or date value is expired.' },
  'InvalidTimeStamp.Format': { status: 400, message: 'Specified time stamp or date value is not well formatted.' },
  SignatureNonceUsed: { status: 400, message: 'Specified signature nonce was used already.' },
  'InvalidAction.NotFound': { status: 404, message: 'Specified api is not found, please check your url and method.' },
  InvalidVersion: { status: 400, message: 'Specified parameter Version is not valid.' },
  InvalidSignatureMethod: { status: 400, message: 'Specified signature method is not supported.' },
  'Throttling.User': { status: 400, message: 'Request was denied due to user flow control.' },
  'Throttling.Api': { status: 400, message: 'Request was denied due to api flow control.' },
  'isp.RAM_PERMISSION_DENY': { status: 403, message: 'RAM权限DENY' },
  InternalError: { status: 500, message: 'The request processing has failed due to some unknown error, exception or failure.' },
  ServiceUnavailable: { status: 503, message: 'The request has failed due to a temporary failure of the server.' },
};

/** Business errors (HTTP 200) and their usual messages. */
const businessMessages: Record<string, string> = {
  'isp.SYSTEM_ERROR': '系统出现错误，请重试',
  'isv.BUSINESS_LIMIT_CONTROL': '触发分钟级流控Permits:1',
  'isv.DAY_LIMIT_CONTROL': '触发日发送限额',
  'isv.MONTH_LIMIT_CONTROL': '触发月发送限额',
  'isv.MOBILE_NUMBER_ILLEGAL': '非法手机号',
  'isv.MOBILE_COUNT_OVER_LIMIT': '手机号码数量超过限制',
  'isv.TEMPLATE_MISSING_PARAMETERS': '模板缺少变量',
  'isv.INVALID_JSON_PARAM': 'JSON参数不合法，只接受字符串值',
  'isv.PARAM_LENGTH_LIMIT': '参数超出长度限制',
  'isv.PARAM_NOT_SUPPORT_URL': '不支持URL',
  'isv.SMS_TEMPLATE_ILLEGAL': '模板不合法(不存在或被拉黑)',
  'isv.SMS_SIGNATURE_ILLEGAL': '签名不合法(不存在或被拉黑)',
  'isv.SIGN_STATE_ILLEGAL': '签名状态不合法',
  'isv.SMS_SIGNATURE_SCENE_ILLEGAL': '签名和模板类型不一致',
  'isv.SMS_CONTENT_ILLEGAL': '短信内容包含禁止发送内容',
  'isv.BLACK_KEY_CONTROL_LIMIT': '黑名单管控',
  'isv.AMOUNT_NOT_ENOUGH': '账户余额不足',
  'isv.OUT_OF_SERVICE': '业务停机',
  'isv.PRODUCT_UN_SUBSCRIPT': '未开通云通信产品的阿里云客户',
};

/**
 * Percent-encoding as Aliyun's documentation describes it with a form encoder: encode, then `+`→`%20`, `*`→`%2A`,
 * `%7E`→`~`. Written independently of the gateway's encoder on purpose.
 */
function formEncode(value: string): string {
  return new URLSearchParams([['', value]])
    .toString()
    .slice(1)
    .replace(/\+/g, '%20')
    .replace(/\*/g, '%2A')
    .replace(/%7E/g, '~');
}

/** The string to sign the server computes from what it received. */
export function serverStringToSign(method: string, params: Record<string, string>): string {
  const query = Object.keys(params)
    .filter((name) => name !== 'Signature')
    .sort()
    .map((name) => `${formEncode(name)}=${formEncode(params[name])}`)
    .join('&');
  return `${method}&${formEncode('/')}&${formEncode(query)}`;
}

export function serverSignature(method: string, params: Record<string, string>, accessKeySecret: string): string {
  return crypto.createHmac('sha1', `${accessKeySecret}&`).update(serverStringToSign(method, params)).digest('base64');
}

const newRequestId = () => crypto.randomUUID().toUpperCase();
const newBizId = () => `${Date.now()}${crypto.randomInt(100000, 999999)}^0`;

/** Mainland numbers to 11 digits (86/+86/0086 optional); international as digits; undefined when illegal. */
function normalizePhone(raw: string): string | undefined {
  const mainland = /^(?:\+|00)?86(1\d{10})$/.exec(raw)?.[1] ?? /^(1\d{10})$/.exec(raw)?.[1];
  if (mainland) return /^1[3-9]\d{9}$/.test(mainland) ? mainland : undefined;
  const international = /^(?:\+|00)?([1-9]\d{6,14})$/.exec(raw)?.[1];
  return international && !international.startsWith('86') ? international : undefined;
}

async function readBody(request: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startAliyunSmsEmulator(options: AliyunSmsEmulatorOptions): Promise<AliyunSmsEmulator> {
  const now = options.now ?? Date.now;
  const limits =
    options.limits === false
      ? undefined
      : { perMinute: 1, perHour: 5, perDay: 10, ...(options.limits ?? {}) };
  const messages: AliyunSmsRequestRecord[] = [];
  const requests: AliyunSmsRequestRecord[] = [];
  const nonces = new Set<string>();
  const sentAt = new Map<string, number[]>();
  const faults: AliyunFault[] = [];
  const hanging = new Set<http.ServerResponse>();

  function send(response: http.ServerResponse, status: number, body: unknown) {
    response.writeHead(status, { 'content-type': 'application/json;charset=utf-8' });
    response.end(JSON.stringify(body));
  }

  function gatewayError(code: string, message?: string, status?: number) {
    const known = gatewayErrors[code];
    const requestId = newRequestId();
    return {
      status: status ?? known?.status ?? 400,
      body: {
        RequestId: requestId,
        HostId: hostId,
        Code: code,
        Message: message ?? known?.message ?? `${code}`,
        Recommend: `https://api.aliyun.com/troubleshoot?q=${code}&product=Dysmsapi&requestId=${requestId}`,
      },
    };
  }

  function businessError(code: string, message?: string) {
    return { status: 200, body: { RequestId: newRequestId(), Code: code, Message: message ?? businessMessages[code] ?? code } };
  }

  function errorFor(code: string, message?: string, status?: number) {
    return gatewayErrors[code] || code.startsWith('Missing') || status ? gatewayError(code, message, status) : businessError(code, message);
  }

  function flowControl(signName: string, phone: string, at: number): string | undefined {
    if (!limits) return undefined;
    const times = (sentAt.get(`${signName}|${phone}`) ?? []).filter((time) => time > at - 24 * 3_600_000);
    const windows: [number, number, string][] = [
      [60_000, limits.perMinute, '分钟级'],
      [3_600_000, limits.perHour, '小时级'],
      [24 * 3_600_000, limits.perDay, '天级'],
    ];
    for (const [windowMs, max, label] of windows) {
      if (max > 0 && times.filter((time) => time > at - windowMs).length >= max) return `触发${label}流控Permits:${max}`;
    }
    return undefined;
  }

  /** Everything a SendSms request goes through; returns the answer. */
  function handle(method: string, params: Record<string, string>, record: AliyunSmsRequestRecord) {
    for (const name of ['AccessKeyId', 'Signature', 'SignatureNonce', 'Timestamp', 'SignatureMethod', 'Action', 'Version']) {
      if (!params[name]) return gatewayError(`Missing${name}`, `${name} is mandatory for this action.`);
    }
    if (params.Action !== 'SendSms') return gatewayError('InvalidAction.NotFound');
    if (params.Version !== '2017-05-25') return gatewayError('InvalidVersion');
    if (params.AccessKeyId !== options.accessKeyId) return gatewayError('InvalidAccessKeyId.NotFound');
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/.test(params.Timestamp) || Number.isNaN(Date.parse(params.Timestamp))) {
      return gatewayError('InvalidTimeStamp.Format');
    }
    if (Math.abs(now() - Date.parse(params.Timestamp)) > timestampWindowMs) return gatewayError('InvalidTimeStamp.Expired');
    if (params.SignatureMethod !== 'HMAC-SHA1' || (params.SignatureVersion ?? '1.0') !== '1.0') {
      return gatewayError('InvalidSignatureMethod');
    }
    const expected = serverSignature(method, params, options.accessKeySecret);
    const received = Buffer.from(params.Signature);
    if (received.length !== Buffer.byteLength(expected) || !crypto.timingSafeEqual(received, Buffer.from(expected))) {
      const known = gatewayErrors.SignatureDoesNotMatch;
      return gatewayError('SignatureDoesNotMatch', `${known.message} server string to sign is:${serverStringToSign(method, params)}`);
    }
    if (nonces.has(params.SignatureNonce)) return gatewayError('SignatureNonceUsed');
    nonces.add(params.SignatureNonce);

    const fault = faults.shift();
    if (fault && 'code' in fault) return errorFor(fault.code, fault.message, fault.status);
    if (fault) return fault;

    for (const name of ['PhoneNumbers', 'SignName', 'TemplateCode']) {
      if (!params[name]) return gatewayError(`Missing${name}`, `${name} is mandatory for this action.`);
    }
    const numbers = params.PhoneNumbers.split(',').map((phone) => phone.trim());
    if (numbers.length > 1000) return businessError('isv.MOBILE_COUNT_OVER_LIMIT');
    const phones = numbers.map(normalizePhone);
    if (phones.some((phone) => phone === undefined)) return businessError('isv.MOBILE_NUMBER_ILLEGAL');
    if (options.signNames && !options.signNames.includes(params.SignName)) return businessError('isv.SMS_SIGNATURE_ILLEGAL');
    const variables = options.templates?.[params.TemplateCode];
    if (options.templates && !variables) return businessError('isv.SMS_TEMPLATE_ILLEGAL');
    const templateParam = record.templateParam;
    if (params.TemplateParam !== undefined) {
      const valid =
        templateParam !== undefined &&
        !Array.isArray(templateParam) &&
        Object.values(templateParam).every((value) => typeof value === 'string');
      if (!valid) return businessError('isv.INVALID_JSON_PARAM');
    }
    if (variables?.some((name) => templateParam?.[name] === undefined)) return businessError('isv.TEMPLATE_MISSING_PARAMETERS');
    const at = now();
    for (const phone of phones as string[]) {
      const limited = flowControl(params.SignName, phone, at);
      if (limited) return businessError('isv.BUSINESS_LIMIT_CONTROL', limited);
    }
    for (const phone of phones as string[]) {
      const key = `${params.SignName}|${phone}`;
      sentAt.set(key, [...(sentAt.get(key) ?? []), at]);
    }
    record.bizId = newBizId();
    return { status: 200, body: { Message: 'OK', RequestId: newRequestId(), Code: 'OK', BizId: record.bizId } };
  }

  const server = http.createServer(async (request, response) => {
    try {
      const url = new URL(request.url ?? '/', 'http://emulator');
      const raw = await readBody(request);
      if (url.pathname === '/_emulator/messages' && request.method === 'GET') return send(response, 200, messages);
      if (url.pathname === '/_emulator/fault' && request.method === 'POST') {
        const { times, ...fault } = JSON.parse(raw || '{}') as AliyunFault & { times?: number };
        emulator.failNext(fault as AliyunFault, times ?? 1);
        return send(response, 200, { ok: true, pending: faults.length });
      }
      const method = (request.method ?? 'GET').toUpperCase();
      if (url.pathname !== '/' || (method !== 'GET' && method !== 'POST')) {
        const { status, body } = gatewayError('InvalidAction.NotFound');
        return send(response, status, body);
      }
      const params: Record<string, string> = Object.fromEntries(url.searchParams);
      if (method === 'POST') Object.assign(params, Object.fromEntries(new URLSearchParams(raw)));
      let templateParam: Record<string, unknown> | undefined;
      try {
        const parsed = params.TemplateParam === undefined ? undefined : JSON.parse(params.TemplateParam);
        templateParam = parsed && typeof parsed === 'object' ? parsed : undefined;
      } catch {
        templateParam = undefined;
      }
      const record: AliyunSmsRequestRecord = {
        method,
        accessKeyId: params.AccessKeyId,
        phone: params.PhoneNumbers,
        signName: params.SignName,
        templateCode: params.TemplateCode,
        templateParam,
        templateParamRaw: params.TemplateParam,
        outId: params.OutId,
        signature: params.Signature,
        signatureNonce: params.SignatureNonce,
        timestamp: params.Timestamp,
        params,
        code: '',
        httpStatus: 0,
        receivedAt: new Date(),
      };
      const answer = handle(method, params, record);
      if ('hang' in answer) {
        record.code = 'HANG';
        requests.push(record);
        options.onRequest?.(record);
        hanging.add(response);
        response.on('close', () => hanging.delete(response));
        return;
      }
      if ('httpStatus' in answer) {
        record.code = `HTTP_${answer.httpStatus}`;
        record.httpStatus = answer.httpStatus;
        requests.push(record);
        options.onRequest?.(record);
        response.writeHead(answer.httpStatus, { 'content-type': 'text/html' });
        return response.end(answer.body ?? `<html><body><h1>${answer.httpStatus} ${http.STATUS_CODES[answer.httpStatus] ?? ''}</h1></body></html>`);
      }
      const body = answer.body as { Code: string };
      record.code = body.Code;
      record.httpStatus = answer.status;
      requests.push(record);
      if (body.Code === 'OK') messages.push(record);
      options.onRequest?.(record);
      send(response, answer.status, body);
    } catch (error) {
      send(response, 500, { Code: 'InternalError', Message: String(error) });
    }
  });

  const { url, port } = await listenLocal(server, options.port, options.host);
  const emulator: AliyunSmsEmulator = {
    url,
    port,
    messages,
    requests,
    failNext(fault, times = 1) {
      for (let i = 0; i < times; i += 1) faults.push(fault);
    },
    reset() {
      messages.length = 0;
      requests.length = 0;
      nonces.clear();
      sentAt.clear();
      faults.length = 0;
    },
    close: () => closeServer(server, hanging),
  };
  return emulator;
}

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '4020' },
      host: { type: 'string', default: '127.0.0.1' },
      key: { type: 'string', default: 'testId:testSecret' },
      'no-limit': { type: 'boolean', default: false },
    },
  });
  const separator = values.key.indexOf(':');
  if (separator <= 0) throw new Error('--key must be ACCESS_KEY_ID:ACCESS_KEY_SECRET');
  const emulator = await startAliyunSmsEmulator({
    accessKeyId: values.key.slice(0, separator),
    accessKeySecret: values.key.slice(separator + 1),
    port: Number(values.port),
    host: values.host,
    limits: values['no-limit'] ? false : undefined,
    onRequest: (record) =>
      console.log(
        JSON.stringify({
          code: record.code,
          phone: record.phone,
          signName: record.signName,
          templateCode: record.templateCode,
          templateParam: record.templateParam,
          outId: record.outId,
          bizId: record.bizId,
        }),
      ),
  });
  console.log(`Aliyun SMS emulator on ${emulator.url} (access key ${values.key.slice(0, separator)})`);
  console.log(`  ALIYUN_SMS_ENDPOINT=${emulator.url}`);
  const stop = () => void emulator.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

runIfMain(import.meta.url, main);
