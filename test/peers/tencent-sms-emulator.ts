import crypto from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { closeServer, listenLocal, runIfMain } from './peer-server';

/**
 * A local Tencent Cloud SMS (SendSms, API 3.0, version 2021-01-11) for tests and demos. It checks the TC3-HMAC-SHA256
 * signature as the API gateway does (secret id, 5-minute timestamp window, scope date = UTC date of the timestamp,
 * canonical request over the signed headers and the body), validates SendSms parameters, applies the default
 * per-number limit (1 per 30 s), and answers Tencent's real bodies: SendStatusSet with per-number codes, or
 * {"Response":{"Error":{Code,Message},"RequestId"}} for request-level failures.
 *
 *   npx tsx test/peers/tencent-sms-emulator.ts --port 4021 --key SECRET_ID:SECRET_KEY [--host 127.0.0.1] [--no-limit]
 *
 * By hand, faults are injected with POST /_emulator/fault {"code":"InternalError.Timeout","times":1}
 * (or {"httpStatus":502} or {"hang":true}); GET /_emulator/messages lists what was received.
 */

export type TencentFault =
  | { code: string; message?: string; /** Where the code goes; by default per-number codes go in SendStatusSet. */ where?: 'status' | 'error' }
  | { httpStatus: number; body?: string }
  | { hang: true };

export interface TencentSmsRequestRecord {
  secretId?: string;
  action?: string;
  version?: string;
  region?: string;
  timestamp?: string;
  /** The hex signature as received in Authorization. */
  signature?: string;
  /** PhoneNumberSet[0] (see `body` for all of them). */
  phone?: string;
  sdkAppId?: string;
  signName?: string;
  templateId?: string;
  templateParams?: unknown[];
  sessionContext?: string;
  /** The decoded JSON body. */
  body?: Record<string, unknown>;
  /** The Code answered: Ok, a SendStatusSet code or the request-level error. */
  code: string;
  httpStatus: number;
  serialNo?: string;
  receivedAt: Date;
}

export interface TencentSmsEmulatorOptions {
  secretId: string;
  secretKey: string;
  port?: number;
  host?: string;
  /** Per number; Tencent's default is 1 per 30 s. `false` disables it. */
  limits?: false | { perThirtySeconds?: number; perHour?: number; perDay?: number };
  /** The SmsSdkAppId the key may use; any numeric id when omitted. */
  sdkAppId?: string;
  /** Approved sign names; any when omitted. */
  signNames?: string[];
  /** Approved templates and how many parameters each takes; any when omitted. */
  templates?: Record<string, number>;
  /** The emulator's clock (to test the 5-minute window). */
  now?: () => number;
  onRequest?: (record: TencentSmsRequestRecord) => void;
}

export interface TencentSmsEmulator {
  readonly url: string;
  readonly port: number;
  /** Messages accepted for sending, newest last. */
  readonly messages: TencentSmsRequestRecord[];
  /** Every request, accepted or not, newest last. */
  readonly requests: TencentSmsRequestRecord[];
  /** Answers the next `times` correctly signed requests with this fault instead of processing them. */
  failNext(fault: TencentFault, times?: number): void;
  reset(): void;
  close(): Promise<void>;
}

const signatureWindowSeconds = 300;

const messagesByCode: Record<string, string> = {
  'AuthFailure.SignatureFailure': 'The provided credentials could not be validated. Please check your signature is correct.',
  'AuthFailure.SecretIdNotFound': 'The SecretId is not found, please ensure that your SecretId is correct.',
  'AuthFailure.InvalidAuthorization': 'The value of the request header `Authorization` is invalid.',
  'FailedOperation.JsonParseFail': '解析请求包体时候失败。',
  'FailedOperation.SignatureIncorrectOrUnapproved': '签名未审批或格式错误。（1）可登录 短信控制台，核查签名是否已审批并且审批通过；（2）核查是否符合格式规范，签名只能由中英文、数字组成，要求2 - 12个字，若存在疑问可联系 腾讯云短信小助手。',
  'FailedOperation.TemplateIncorrectOrUnapproved': '模板未审批或不存在。可登录 短信控制台，核查模板是否已审批并审批通过。若存在疑问可联系 腾讯云短信小助手。',
  'FailedOperation.TemplateParamSetNotMatchApprovedTemplate': '请求内容与审核通过的模板内容不匹配。请检查请求中模板参数的个数是否与申请的模板一致。',
  'FailedOperation.InsufficientBalanceInSmsPackage': '套餐包余量不足，请 购买套餐包。',
  'FailedOperation.ContainSensitiveWord': '短信内容中含有敏感词，请联系 腾讯云短信小助手。',
  'FailedOperation.PhoneNumberInBlacklist': '手机号在免打扰名单库中，免打扰名单是指用户退订的号码，且一般是用户回复“TD”之类的关键字。',
  'InternalError.Timeout': '请求下发短信超时，请参考 60008错误详解。',
  'InternalError.OtherError': '其他错误，请联系 腾讯云短信小助手 并提供失败手机号。',
  'InvalidParameterValue.IncorrectPhoneNumber': '手机号格式错误。',
  'InvalidParameterValue.TemplateParameterFormatError': '验证码模板参数格式错误，验证码类模板，模板变量只能传入0 - 6位（包括6位）纯数字。',
  'InvalidParameterValue.ContentLengthLimit': '请求的短信内容太长，短信长度规则请参考 国内短信内容长度计算规则。',
  'LimitExceeded.PhoneNumberCountLimit': '调用接口单次提交的手机号个数超过200个，请遵守 API 接口输入参数 PhoneNumberSet 描述。',
  'LimitExceeded.PhoneNumberThirtySecondLimit': '单个手机号30秒内下发短信条数超过设定的上限，可自行到控制台调整短信频率限制策略。',
  'LimitExceeded.PhoneNumberOneHourLimit': '单个手机号1小时内下发短信条数超过设定的上限，可自行到控制台调整短信频率限制策略。',
  'LimitExceeded.PhoneNumberDailyLimit': '单个手机号日下发短信条数超过设定的上限，可自行到控制台调整短信频率限制策略。',
  'LimitExceeded.PhoneNumberSameContentDailyLimit': '单个手机号下发相同内容超过设定的上限，可自行到控制台调整短信频率限制策略。',
  'LimitExceeded.DeliveryFrequencyLimit': '下发短信命中了频率限制策略，可自行到控制台调整短信频率限制策略，如有其他需求请联系 腾讯云短信小助手。',
  'LimitExceeded.AppDailyLimit': '业务短信日下发条数超过设定的上限，可自行到控制台调整短信频率限制策略。',
  'LimitExceeded.DailyLimit': '短信日下发条数超过设定的上限 (国际/港澳台)，如需调整限制，可联系 腾讯云短信小助手。',
  'MissingParameter.EmptyPhoneNumberSet': '传入的号码列表为空，请确认您的参数中是否传入号码。',
  'UnauthorizedOperation.SmsSdkAppIdVerifyFail': 'SmsSdkAppId 校验失败，请检查 SmsSdkAppId 是否属于 云API密钥 的关联账户。',
  'UnauthorizedOperation.RequestIpNotInWhitelist': '请求 IP 不在白名单中，您配置了校验请求来源 IP，但是检测到当前请求 IP 不在配置列表中，如有需要请联系 腾讯云短信小助手。',
  RequestLimitExceeded: '请求的次数超过了频率限制。',
};

/** Codes Tencent reports per number in SendStatusSet rather than for the whole request. */
const perNumberCodes = new Set([
  'InvalidParameterValue.IncorrectPhoneNumber',
  'LimitExceeded.PhoneNumberThirtySecondLimit',
  'LimitExceeded.PhoneNumberOneHourLimit',
  'LimitExceeded.PhoneNumberDailyLimit',
  'LimitExceeded.PhoneNumberSameContentDailyLimit',
  'LimitExceeded.DeliveryFrequencyLimit',
  'FailedOperation.PhoneNumberInBlacklist',
  'FailedOperation.InsufficientBalanceInSmsPackage',
]);

const sha256 = (value: string | Buffer) => crypto.createHash('sha256').update(value).digest('hex');
const hmacSha256 = (key: Buffer | string, value: string) => crypto.createHmac('sha256', key).update(value).digest();

/** What the server expects, from what it received: signed headers lowercased and trimmed, scope date from the timestamp. */
export function serverTc3Signature(input: {
  secretKey: string;
  timestamp: number;
  signedHeaders: string[];
  headers: Record<string, string | undefined>;
  body: Buffer | string;
  method?: string;
  path?: string;
  query?: string;
  service?: string;
}): { signature: string; canonicalRequest: string; date: string } {
  const service = input.service ?? 'sms';
  const canonicalHeaders = input.signedHeaders
    .map((name) => `${name}:${(input.headers[name] ?? '').trim().toLowerCase()}\n`)
    .join('');
  const canonicalRequest = [
    input.method ?? 'POST',
    input.path ?? '/',
    input.query ?? '',
    canonicalHeaders,
    input.signedHeaders.join(';'),
    sha256(input.body),
  ].join('\n');
  const date = new Date(input.timestamp * 1000).toISOString().slice(0, 10);
  const stringToSign = ['TC3-HMAC-SHA256', String(input.timestamp), `${date}/${service}/tc3_request`, sha256(canonicalRequest)].join('\n');
  const key = hmacSha256(hmacSha256(hmacSha256(`TC3${input.secretKey}`, date), service), 'tc3_request');
  return { signature: crypto.createHmac('sha256', key).update(stringToSign).digest('hex'), canonicalRequest, date };
}

const newRequestId = () => crypto.randomUUID();
const newSerialNo = () => `2433:${crypto.randomInt(1e9, 1e10 - 1)}${crypto.randomInt(1e9, 1e10 - 1)}`;

function isoCode(phone: string): string {
  if (phone.startsWith('+86') || /^1\d{10}$/.test(phone)) return 'CN';
  if (phone.startsWith('+852')) return 'HK';
  if (phone.startsWith('+1')) return 'US';
  return 'XX';
}

function phoneValid(phone: string): boolean {
  if (/^1\d{10}$/.test(phone)) return /^1[3-9]\d{9}$/.test(phone);
  if (phone.startsWith('+86')) return /^\+861[3-9]\d{9}$/.test(phone);
  return /^\+[1-9]\d{6,14}$/.test(phone);
}

async function readBody(request: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

type Answer = { status: number; body: unknown } | { httpStatus: number; body?: string } | { hang: true };

export async function startTencentSmsEmulator(options: TencentSmsEmulatorOptions): Promise<TencentSmsEmulator> {
  const now = options.now ?? Date.now;
  const limits = options.limits === false ? undefined : { perThirtySeconds: 1, perHour: 0, perDay: 0, ...(options.limits ?? {}) };
  const messages: TencentSmsRequestRecord[] = [];
  const requests: TencentSmsRequestRecord[] = [];
  const sentAt = new Map<string, number[]>();
  const faults: TencentFault[] = [];
  const hanging = new Set<http.ServerResponse>();

  const error = (code: string, message?: string): Answer => ({
    status: 200,
    body: { Response: { Error: { Code: code, Message: message ?? messagesByCode[code] ?? code }, RequestId: newRequestId() } },
  });

  function limitFor(phone: string, at: number): string | undefined {
    if (!limits) return undefined;
    const times = sentAt.get(phone) ?? [];
    const windows: [number, number, string][] = [
      [30_000, limits.perThirtySeconds, 'LimitExceeded.PhoneNumberThirtySecondLimit'],
      [3_600_000, limits.perHour, 'LimitExceeded.PhoneNumberOneHourLimit'],
      [24 * 3_600_000, limits.perDay, 'LimitExceeded.PhoneNumberDailyLimit'],
    ];
    for (const [windowMs, max, code] of windows) {
      if (max > 0 && times.filter((time) => time > at - windowMs).length >= max) return code;
    }
    return undefined;
  }

  function handle(request: http.IncomingMessage, raw: Buffer, record: TencentSmsRequestRecord): Answer {
    const header = (name: string) => {
      const value = request.headers[name];
      return Array.isArray(value) ? value.join(',') : value;
    };
    const action = header('x-tc-action');
    const version = header('x-tc-version');
    const region = header('x-tc-region');
    const timestampHeader = header('x-tc-timestamp');
    if (!action) return error('MissingParameter', 'The request is missing a required parameter `Action`.');
    if (action !== 'SendSms') return error('InvalidAction', `The requested action \`${action}\` does not exist.`);
    if (version !== '2021-01-11') return error('NoSuchVersion', `The requested version \`${version ?? ''}\` of service \`sms\` does not exist.`);
    if (!region) return error('MissingParameter', 'The request is missing a required parameter `Region`.');
    if (!/^[a-z]+-[a-z]+$/.test(region)) return error('UnsupportedRegion', 'The requested region is not supported.');
    if (!timestampHeader || !/^\d+$/.test(timestampHeader)) {
      return error('MissingParameter', 'The request is missing a required parameter `Timestamp`.');
    }
    const authorization = header('authorization') ?? '';
    const parsed = /^TC3-HMAC-SHA256 Credential=([^/\s]+)\/(\d{4}-\d{2}-\d{2})\/([a-z]+)\/tc3_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(
      authorization,
    );
    if (!parsed) return error('AuthFailure.InvalidAuthorization');
    const [, secretId, credentialDate, service, signedHeaderList, signature] = parsed;
    record.secretId = secretId;
    record.signature = signature;
    if (secretId !== options.secretId) return error('AuthFailure.SecretIdNotFound');
    const timestamp = Number(timestampHeader);
    const serverSeconds = Math.floor(now() / 1000);
    if (Math.abs(serverSeconds - timestamp) > signatureWindowSeconds) {
      return error(
        'AuthFailure.SignatureExpire',
        `Signature expired. Please use local time and enable NTP service for time synchronization to avoid a deviation between \`Timestamp\` and the server time ${serverSeconds}.`,
      );
    }
    const signedHeaders = signedHeaderList.split(';');
    if (!signedHeaders.includes('content-type') || !signedHeaders.includes('host')) {
      return error('AuthFailure.SignatureFailure');
    }
    const headers = Object.fromEntries(signedHeaders.map((name) => [name, header(name)]));
    const url = new URL(request.url ?? '/', 'http://emulator');
    const expected = serverTc3Signature({
      secretKey: options.secretKey,
      timestamp,
      signedHeaders,
      headers,
      body: raw,
      method: request.method,
      path: url.pathname,
      query: url.search.slice(1),
    });
    const matches =
      credentialDate === expected.date &&
      service === 'sms' &&
      crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expected.signature));
    if (!matches) return error('AuthFailure.SignatureFailure');

    const fault = faults.shift();
    if (fault && 'code' in fault) {
      const where = fault.where ?? (perNumberCodes.has(fault.code) ? 'status' : 'error');
      if (where === 'error') return error(fault.code, fault.message);
      const phones = Array.isArray(record.body?.PhoneNumberSet) ? (record.body.PhoneNumberSet as string[]) : [''];
      return {
        status: 200,
        body: {
          Response: {
            SendStatusSet: phones.map((phone) => ({
              SerialNo: '',
              PhoneNumber: phone,
              Fee: 0,
              SessionContext: record.sessionContext ?? '',
              Code: fault.code,
              Message: fault.message ?? messagesByCode[fault.code] ?? fault.code,
              IsoCode: isoCode(phone),
            })),
            RequestId: newRequestId(),
          },
        },
      };
    }
    if (fault) return fault;

    const body = record.body;
    if (!body) return error('FailedOperation.JsonParseFail');
    for (const name of ['SmsSdkAppId', 'TemplateId']) {
      if (typeof body[name] !== 'string' || !body[name]) return error('MissingParameter', `The request is missing a required parameter \`${name}\`.`);
    }
    if (options.sdkAppId ? body.SmsSdkAppId !== options.sdkAppId : !/^\d+$/.test(body.SmsSdkAppId as string)) {
      return error('UnauthorizedOperation.SmsSdkAppIdVerifyFail');
    }
    const phones = body.PhoneNumberSet;
    if (!Array.isArray(phones) || phones.length === 0) return error('MissingParameter.EmptyPhoneNumberSet');
    if (phones.length > 200) return error('LimitExceeded.PhoneNumberCountLimit');
    const params = body.TemplateParamSet ?? [];
    if (!Array.isArray(params) || params.some((value) => typeof value !== 'string')) {
      return error('InvalidParameter', 'The parameter `TemplateParamSet` must be an array of strings.');
    }
    const mainland = phones.some((phone) => isoCode(String(phone)) === 'CN');
    if (mainland && (typeof body.SignName !== 'string' || !body.SignName)) {
      return error('FailedOperation.SignatureIncorrectOrUnapproved');
    }
    if (options.signNames && !options.signNames.includes(body.SignName as string)) {
      return error('FailedOperation.SignatureIncorrectOrUnapproved');
    }
    const expectedCount = options.templates?.[body.TemplateId as string];
    if (options.templates && expectedCount === undefined) return error('FailedOperation.TemplateIncorrectOrUnapproved');
    if (expectedCount !== undefined && expectedCount !== params.length) {
      return error('FailedOperation.TemplateParamSetNotMatchApprovedTemplate');
    }
    const at = now();
    const statuses = phones.map((value) => {
      const phone = String(value);
      const base = { PhoneNumber: phone, SessionContext: typeof body.SessionContext === 'string' ? body.SessionContext : '', IsoCode: isoCode(phone) };
      const code = !phoneValid(phone) ? 'InvalidParameterValue.IncorrectPhoneNumber' : limitFor(phone.replace(/^\+86/, ''), at);
      if (code) return { SerialNo: '', ...base, Fee: 0, Code: code, Message: messagesByCode[code] };
      const key = phone.replace(/^\+86/, '');
      sentAt.set(key, [...(sentAt.get(key) ?? []), at]);
      return { SerialNo: newSerialNo(), ...base, Fee: 1, Code: 'Ok', Message: 'send success' };
    });
    record.serialNo = statuses[0].SerialNo || undefined;
    return { status: 200, body: { Response: { SendStatusSet: statuses, RequestId: newRequestId() } } };
  }

  const server = http.createServer(async (request, response) => {
    const json = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    try {
      const raw = await readBody(request);
      const url = new URL(request.url ?? '/', 'http://emulator');
      if (url.pathname === '/_emulator/messages' && request.method === 'GET') return json(200, messages);
      if (url.pathname === '/_emulator/fault' && request.method === 'POST') {
        const { times, ...fault } = JSON.parse(raw.toString('utf8') || '{}') as TencentFault & { times?: number };
        emulator.failNext(fault as TencentFault, times ?? 1);
        return json(200, { ok: true, pending: faults.length });
      }
      let body: Record<string, unknown> | undefined;
      try {
        const parsed = JSON.parse(raw.toString('utf8'));
        body = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed : undefined;
      } catch {
        body = undefined;
      }
      const phones = Array.isArray(body?.PhoneNumberSet) ? body.PhoneNumberSet : undefined;
      const record: TencentSmsRequestRecord = {
        action: request.headers['x-tc-action'] as string | undefined,
        version: request.headers['x-tc-version'] as string | undefined,
        region: request.headers['x-tc-region'] as string | undefined,
        timestamp: request.headers['x-tc-timestamp'] as string | undefined,
        phone: phones?.[0] as string | undefined,
        sdkAppId: body?.SmsSdkAppId as string | undefined,
        signName: body?.SignName as string | undefined,
        templateId: body?.TemplateId as string | undefined,
        templateParams: body?.TemplateParamSet as unknown[] | undefined,
        sessionContext: body?.SessionContext as string | undefined,
        body,
        code: '',
        httpStatus: 0,
        receivedAt: new Date(),
      };
      const answer =
        request.method !== 'POST' || url.pathname !== '/'
          ? error('UnsupportedProtocol', 'Only POST / with TC3-HMAC-SHA256 is emulated.')
          : handle(request, raw, record);
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
      const result = (answer.body as { Response: { Error?: { Code: string }; SendStatusSet?: { Code: string }[] } }).Response;
      record.code = result.Error?.Code ?? result.SendStatusSet?.[0]?.Code ?? '';
      record.httpStatus = answer.status;
      requests.push(record);
      if (record.code === 'Ok') messages.push(record);
      options.onRequest?.(record);
      json(answer.status, answer.body);
    } catch (failure) {
      json(500, { Response: { Error: { Code: 'InternalError', Message: String(failure) }, RequestId: newRequestId() } });
    }
  });

  const { url, port } = await listenLocal(server, options.port, options.host);
  const emulator: TencentSmsEmulator = {
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
      port: { type: 'string', default: '4021' },
      host: { type: 'string', default: '127.0.0.1' },
      key: { type: 'string', default: 'AKIDtest:testSecretKey' },
      'no-limit': { type: 'boolean', default: false },
    },
  });
  const separator = values.key.indexOf(':');
  if (separator <= 0) throw new Error('--key must be SECRET_ID:SECRET_KEY');
  const emulator = await startTencentSmsEmulator({
    secretId: values.key.slice(0, separator),
    secretKey: values.key.slice(separator + 1),
    port: Number(values.port),
    host: values.host,
    limits: values['no-limit'] ? false : undefined,
    onRequest: (record) =>
      console.log(
        JSON.stringify({
          code: record.code,
          phone: record.phone,
          signName: record.signName,
          templateId: record.templateId,
          templateParams: record.templateParams,
          sessionContext: record.sessionContext,
          serialNo: record.serialNo,
        }),
      ),
  });
  console.log(`Tencent SMS emulator on ${emulator.url} (SecretId ${values.key.slice(0, separator)})`);
  console.log(`  TENCENT_SMS_ENDPOINT=${emulator.url}`);
  const stop = () => void emulator.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

runIfMain(import.meta.url, main);
