import crypto from 'node:crypto';
import type { Logger } from '../logger';
import { maskMobile } from '../logger';
import { ChannelError, type Channel, type FailureKind, type SendContext, type SendResult, type SmsMessage } from './channel';
import { templateValues } from './sms-template';
import { createProviderHttp, redact, requestJson, unexpectedAnswer, type ProviderHttp } from './provider-http';

/** RFC 3986 percent-encoding of UTF-8 bytes, as Aliyun's RPC signature wants it: only A–Z a–z 0–9 - _ . ~ stay. */
export function percentEncode(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const unreserved =
      (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) ||
      byte === 0x2d || byte === 0x5f || byte === 0x2e || byte === 0x7e;
    out += unreserved ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Parameters sorted by name (byte order), each name and value percent-encoded, joined as k=v&k=v. */
export function canonicalizedQuery(params: Record<string, string>): string {
  return Object.keys(params)
    .filter((name) => name !== 'Signature')
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((name) => `${percentEncode(name)}=${percentEncode(params[name])}`)
    .join('&');
}

/** Signature v1 string to sign: METHOD&%2F&percentEncode(canonicalized query). */
export function aliyunStringToSign(method: string, params: Record<string, string>): string {
  return `${method.toUpperCase()}&${percentEncode('/')}&${percentEncode(canonicalizedQuery(params))}`;
}

/** Signature v1 (HMAC-SHA1): Base64(HMAC-SHA1(key = AccessKeySecret + "&", StringToSign)). */
export function signAliyunRpc(method: string, params: Record<string, string>, accessKeySecret: string): string {
  return crypto.createHmac('sha1', `${accessKeySecret}&`).update(aliyunStringToSign(method, params), 'utf8').digest('base64');
}

/** UTC, second precision: yyyy-MM-ddTHH:mm:ssZ. */
export function aliyunTimestamp(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Mainland numbers go national (Aliyun's documented form, 11 digits); other countries as country code and number
 * without "+", which is how Aliyun writes international numbers.
 */
export function aliyunPhoneNumber(e164: string): string {
  return e164.startsWith('+86') ? e164.slice(3) : e164.replace(/^\+/, '');
}

const minuteMs = 60_000;
const hourMs = 60 * minuteMs;

const aliyunKinds: Record<string, FailureKind> = {
  'isv.BUSINESS_LIMIT_CONTROL': 'rate_limited',
  // Quotas an operator set in the console: nothing changes until someone raises them.
  'isv.DAY_LIMIT_CONTROL': 'permanent',
  'isv.MONTH_LIMIT_CONTROL': 'permanent',
  'isv.MOBILE_NUMBER_ILLEGAL': 'permanent',
  'isv.MOBILE_COUNT_OVER_LIMIT': 'permanent',
  'isv.TEMPLATE_MISSING_PARAMETERS': 'permanent',
  'isv.INVALID_JSON_PARAM': 'permanent',
  'isv.PARAM_LENGTH_LIMIT': 'permanent',
  'isv.PARAM_NOT_SUPPORT_URL': 'permanent',
  'isv.SMS_TEMPLATE_ILLEGAL': 'permanent',
  'isv.SMS_SIGNATURE_ILLEGAL': 'permanent',
  'isv.SIGN_STATE_ILLEGAL': 'permanent',
  'isv.SMS_SIGNATURE_SCENE_ILLEGAL': 'permanent',
  'isv.SMS_CONTENT_ILLEGAL': 'permanent',
  'isv.BLACK_KEY_CONTROL_LIMIT': 'permanent',
  'isv.AMOUNT_NOT_ENOUGH': 'permanent',
  'isv.OUT_OF_SERVICE': 'permanent',
  'isp.RAM_PERMISSION_DENY': 'permanent',
  'isv.PRODUCT_UN_SUBSCRIPT': 'permanent',
  'isp.SYSTEM_ERROR': 'retryable',
  'Throttling.User': 'retryable',
  'Throttling.Api': 'retryable',
  SignatureDoesNotMatch: 'permanent',
  'InvalidAccessKeyId.NotFound': 'permanent',
  // Re-signed and sent again once within the attempt (see send); permanent when that fails too.
  'InvalidTimeStamp.Expired': 'permanent',
  SignatureNonceUsed: 'permanent',
};

/** Rejected before any processing, so sending again with a fresh timestamp and nonce cannot send twice. */
const resignOnce = new Set(['InvalidTimeStamp.Expired', 'SignatureNonceUsed']);

/** Aliyun Code → how the gateway treats it. Unknown codes: isp.* (platform) and 5xx retry, everything else is final. */
export function classifyAliyunError(code: string, message = '', httpStatus = 200): { kind: FailureKind; retryAfterMs?: number } {
  const known = aliyunKinds[code];
  if (known === 'rate_limited') {
    // 触发分钟级流控Permits:1 / 触发小时级流控Permits:5 / 触发天级流控Permits:10
    const retryAfterMs = message.includes('分钟') ? minuteMs : message.includes('小时') ? hourMs : 24 * hourMs;
    return { kind: 'rate_limited', retryAfterMs };
  }
  if (known) return { kind: known };
  if (code.startsWith('Throttling') || code.startsWith('isp.') || code === 'ServiceUnavailable' || code.startsWith('InternalError')) {
    return { kind: 'retryable' };
  }
  if (httpStatus >= 500) return { kind: 'retryable' };
  return { kind: 'permanent' };
}

export interface AliyunSmsOptions {
  accessKeyId: string;
  accessKeySecret: string;
  signName: string;
  templateCode: string;
  endpoint: string;
  /** Template parameter `content` fills. */
  templateParam: string;
  timeoutMs: number;
  regionId?: string;
  logger?: Logger;
  /** For tests of the clock check. */
  now?: () => number;
}

interface AliyunAnswer {
  Code?: unknown;
  Message?: unknown;
  BizId?: unknown;
  RequestId?: unknown;
}

/** Alibaba Cloud SMS (Dysmsapi 2017-05-25 SendSms), RPC style, signature v1, one POST form per message. */
export class AliyunSmsChannel implements Channel<'SMS'> {
  readonly channel = 'SMS';
  readonly provider = 'aliyun';
  readonly development = false;
  private readonly http: ProviderHttp;
  private readonly url: string;
  private readonly now: () => number;

  constructor(private readonly options: AliyunSmsOptions) {
    this.url = new URL('/', options.endpoint).toString();
    this.now = options.now ?? Date.now;
    this.http = createProviderHttp(options.timeoutMs);
  }

  async send(message: SmsMessage, context: SendContext): Promise<SendResult> {
    const values = templateValues(message, this.options.templateParam);
    const business: Record<string, string> = {
      Action: 'SendSms',
      Version: '2017-05-25',
      Format: 'JSON',
      RegionId: this.options.regionId ?? 'cn-hangzhou',
      AccessKeyId: this.options.accessKeyId,
      SignatureMethod: 'HMAC-SHA1',
      SignatureVersion: '1.0',
      PhoneNumbers: aliyunPhoneNumber(message.mobile),
      SignName: this.options.signName,
      TemplateCode: message.template ?? this.options.templateCode,
      TemplateParam: JSON.stringify(values),
      OutId: context.deliveryId,
    };
    // The code always; other values only when long enough not to blot out ordinary words and numbers of the message.
    const secrets = [message.content, ...Object.values(values).filter((value) => value.length >= 4)];

    for (let round = 1; ; round += 1) {
      const params = { ...business, SignatureNonce: crypto.randomUUID(), Timestamp: aliyunTimestamp(this.now()) };
      const body = `${canonicalizedQuery(params)}&Signature=${percentEncode(signAliyunRpc('POST', params, this.options.accessKeySecret))}`;
      const { statusCode, answer } = await requestJson<AliyunAnswer>('Aliyun SMS', () =>
        this.http.client.post(this.url, {
          body,
          headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', accept: 'application/json' },
          signal: context.signal,
        }),
        this.http.timeoutMs,
      );
      if (typeof answer?.Code !== 'string') throw unexpectedAnswer('Aliyun SMS', statusCode, 'its JSON body');
      const code = answer.Code;
      const requestId = typeof answer.RequestId === 'string' ? answer.RequestId : undefined;
      this.options.logger?.debug(
        { deliveryId: context.deliveryId, mobile: maskMobile(message.mobile), code, requestId, status: statusCode },
        'Aliyun SendSms answered',
      );
      if (code === 'OK' && statusCode < 300) {
        return { providerMessageId: typeof answer.BizId === 'string' ? answer.BizId : undefined };
      }
      if (resignOnce.has(code) && round === 1) continue;
      const text = redact(typeof answer.Message === 'string' ? answer.Message : code, secrets);
      const { kind, retryAfterMs } = classifyAliyunError(code, text, statusCode);
      throw new ChannelError(kind, code, text, retryAfterMs);
    }
  }

  async close() {
    this.http.close();
  }
}
