import crypto from 'node:crypto';
import type { Logger } from '../logger';
import { maskMobile } from '../logger';
import { ChannelError, type Channel, type FailureKind, type SendContext, type SendResult, type SmsMessage } from './channel';
import { positionalTemplateValues } from './sms-template';
import { createProviderHttp, redact, requestJson, unexpectedAnswer, type ProviderHttp } from './provider-http';

const sha256Hex = (value: string | Buffer) => crypto.createHash('sha256').update(value).digest('hex');
const hmac = (key: string | Buffer, value: string) => crypto.createHmac('sha256', key).update(value, 'utf8').digest();

export const tencentContentType = 'application/json; charset=utf-8';

export interface Tc3Input {
  secretId: string;
  secretKey: string;
  /** e.g. `sms`; the first label of the production host. */
  service: string;
  /** The Host header as sent. */
  host: string;
  /** Epoch seconds (X-TC-Timestamp). */
  timestamp: number;
  payload: string;
  contentType?: string;
}

export interface Tc3Signature {
  canonicalRequest: string;
  hashedCanonicalRequest: string;
  /** `<UTC date of the timestamp>/<service>/tc3_request`. */
  credentialScope: string;
  stringToSign: string;
  signature: string;
  authorization: string;
}

/** TC3-HMAC-SHA256 over POST / with the signed headers content-type and host. */
export function signTc3(input: Tc3Input): Tc3Signature {
  const contentType = input.contentType ?? tencentContentType;
  const canonicalRequest = [
    'POST',
    '/',
    '',
    `content-type:${contentType}\nhost:${input.host}\n`,
    'content-type;host',
    sha256Hex(input.payload),
  ].join('\n');
  // The scope date is the UTC date of the timestamp; a local (UTC+8) date fails every night from 00:00 to 08:00.
  const date = new Date(input.timestamp * 1000).toISOString().slice(0, 10);
  const credentialScope = `${date}/${input.service}/tc3_request`;
  const hashedCanonicalRequest = sha256Hex(canonicalRequest);
  const stringToSign = `TC3-HMAC-SHA256\n${input.timestamp}\n${credentialScope}\n${hashedCanonicalRequest}`;
  const signingKey = hmac(hmac(hmac(`TC3${input.secretKey}`, date), input.service), 'tc3_request');
  const signature = crypto.createHmac('sha256', signingKey).update(stringToSign, 'utf8').digest('hex');
  return {
    canonicalRequest,
    hashedCanonicalRequest,
    credentialScope,
    stringToSign,
    signature,
    authorization: `TC3-HMAC-SHA256 Credential=${input.secretId}/${credentialScope}, SignedHeaders=content-type;host, Signature=${signature}`,
  };
}

const minuteMs = 60_000;
const hourMs = 60 * minuteMs;

/** Per-number limits: final for a verification code (the dispatcher fails SMS at once), with the window for others. */
const perNumberLimits: Record<string, number> = {
  'LimitExceeded.PhoneNumberThirtySecondLimit': 30_000,
  'LimitExceeded.PhoneNumberOneHourLimit': hourMs,
  'LimitExceeded.PhoneNumberDailyLimit': 24 * hourMs,
  'LimitExceeded.PhoneNumberSameContentDailyLimit': 24 * hourMs,
  'LimitExceeded.DeliveryFrequencyLimit': hourMs,
};

const tencentKinds: Record<string, FailureKind> = {
  'LimitExceeded.AppDailyLimit': 'permanent',
  'LimitExceeded.DailyLimit': 'permanent',
  'InvalidParameterValue.IncorrectPhoneNumber': 'permanent',
  'InvalidParameterValue.TemplateParameterFormatError': 'permanent',
  'InvalidParameterValue.ContentLengthLimit': 'permanent',
  'LimitExceeded.PhoneNumberCountLimit': 'permanent',
  'MissingParameter.EmptyPhoneNumberSet': 'permanent',
  'FailedOperation.InsufficientBalanceInSmsPackage': 'permanent',
  'FailedOperation.SignatureIncorrectOrUnapproved': 'permanent',
  'FailedOperation.TemplateIncorrectOrUnapproved': 'permanent',
  'FailedOperation.ContainSensitiveWord': 'permanent',
  'FailedOperation.PhoneNumberInBlacklist': 'permanent',
  'AuthFailure.SignatureFailure': 'permanent',
  'AuthFailure.SecretIdNotFound': 'permanent',
  'UnauthorizedOperation.SmsSdkAppIdVerifyFail': 'permanent',
  'UnauthorizedOperation.RequestIpNotInWhitelist': 'permanent',
  // Re-signed and sent again once within the attempt (see send); permanent when that fails too.
  'AuthFailure.SignatureExpire': 'permanent',
  'InternalError.Timeout': 'retryable',
  'InternalError.OtherError': 'retryable',
  RequestLimitExceeded: 'retryable',
};

/** Tencent Code → how the gateway treats it. Unknown: InternalError.*, RequestLimitExceeded.* and 5xx retry, others are final. */
export function classifyTencentError(code: string, httpStatus = 200): { kind: FailureKind; retryAfterMs?: number } {
  const window = perNumberLimits[code];
  if (window !== undefined) return { kind: 'rate_limited', retryAfterMs: window };
  const known = tencentKinds[code];
  if (known) return { kind: known };
  if (code.startsWith('InternalError') || code.startsWith('RequestLimitExceeded')) return { kind: 'retryable' };
  if (httpStatus >= 500) return { kind: 'retryable' };
  return { kind: 'permanent' };
}

export interface TencentSmsOptions {
  secretId: string;
  secretKey: string;
  sdkAppId: string;
  signName: string;
  templateId: string;
  region: string;
  endpoint: string;
  /** Which template position `content` fills when numeric (else {1}). */
  templateParam: string;
  timeoutMs: number;
  logger?: Logger;
  /** For tests of the clock check. */
  now?: () => number;
}

interface TencentAnswer {
  Response?: {
    Error?: { Code?: unknown; Message?: unknown };
    SendStatusSet?: { SerialNo?: unknown; Code?: unknown; Message?: unknown }[];
    RequestId?: unknown;
  };
}

/** Tencent Cloud SMS (SendSms 2021-01-11), API 3.0 with TC3-HMAC-SHA256, one number per request. */
export class TencentSmsChannel implements Channel<'SMS'> {
  readonly channel = 'SMS';
  readonly provider = 'tencent';
  readonly development = false;
  private readonly http: ProviderHttp;
  private readonly url: string;
  private readonly host: string;
  private readonly now: () => number;

  constructor(private readonly options: TencentSmsOptions) {
    const url = new URL('/', options.endpoint);
    this.url = url.toString();
    this.host = url.host;
    this.now = options.now ?? Date.now;
    this.http = createProviderHttp(options.timeoutMs);
  }

  async send(message: SmsMessage, context: SendContext): Promise<SendResult> {
    const templateParamSet = positionalTemplateValues(message, this.options.templateParam);
    const payload = JSON.stringify({
      PhoneNumberSet: [message.mobile],
      SmsSdkAppId: this.options.sdkAppId,
      SignName: this.options.signName,
      TemplateId: message.template ?? this.options.templateId,
      TemplateParamSet: templateParamSet,
      SessionContext: context.deliveryId,
    });
    const secrets = [message.content, ...templateParamSet.filter((value) => value.length >= 4)];

    for (let round = 1; ; round += 1) {
      const timestamp = Math.floor(this.now() / 1000);
      const { authorization } = signTc3({
        secretId: this.options.secretId,
        secretKey: this.options.secretKey,
        service: 'sms',
        host: this.host,
        timestamp,
        payload,
      });
      const { statusCode, answer } = await requestJson<TencentAnswer>('Tencent SMS', () =>
        this.http.client.post(this.url, {
          body: payload,
          headers: {
            authorization,
            'content-type': tencentContentType,
            host: this.host,
            'x-tc-action': 'SendSms',
            'x-tc-version': '2021-01-11',
            'x-tc-timestamp': String(timestamp),
            'x-tc-region': this.options.region,
          },
          signal: context.signal,
        }),
        this.http.timeoutMs,
      );
      const result = answer?.Response;
      if (!result || typeof result !== 'object') throw unexpectedAnswer('Tencent SMS', statusCode, 'its JSON body');
      // Request-level failure, or the status of our one number.
      const status = result.Error ?? result.SendStatusSet?.[0];
      if (!status || typeof status.Code !== 'string') throw unexpectedAnswer('Tencent SMS', statusCode, 'its JSON body');
      const code = status.Code;
      this.options.logger?.debug(
        { deliveryId: context.deliveryId, mobile: maskMobile(message.mobile), code, requestId: result.RequestId, status: statusCode },
        'Tencent SendSms answered',
      );
      if (!result.Error && code === 'Ok' && statusCode < 300) {
        const serialNo = result.SendStatusSet?.[0]?.SerialNo;
        return { providerMessageId: typeof serialNo === 'string' ? serialNo : undefined };
      }
      if (code === 'AuthFailure.SignatureExpire' && round === 1) continue;
      const text = redact(typeof status.Message === 'string' ? status.Message : code, secrets);
      const { kind, retryAfterMs } = classifyTencentError(code, statusCode);
      throw new ChannelError(kind, code, text, retryAfterMs);
    }
  }

  async close() {
    this.http.close();
  }
}
