import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChannelError } from '../../src/channels/channel';
import { positionalTemplateValues } from '../../src/channels/sms-template';
import { classifyTencentError, signTc3, TencentSmsChannel, type TencentSmsOptions } from '../../src/channels/tencent-sms';
import { serverTc3Signature, startTencentSmsEmulator, type TencentSmsEmulator } from '../peers/tencent-sms-emulator';
import { deliveryFields, deliveryWhen, fetchDelivery, mutationResult, startGateway, type TestGateway } from '../support/gateway';

// The TC3-HMAC-SHA256 documentation example (service cvm).
const docExample = {
  secretId: 'AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE',
  secretKey: 'Gu5t9xGARNpq86cd98joQYCN3EXAMPLE',
  service: 'cvm',
  host: 'cvm.tencentcloudapi.com',
  timestamp: 1551113065,
  payload: '{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}',
};

describe('TC3-HMAC-SHA256', () => {
  it('reproduces the published example: canonical request hash and signature', () => {
    const signed = signTc3(docExample);
    expect(signed.hashedCanonicalRequest).toBe('5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031');
    expect(signed.signature).toBe('72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168');
    expect(signed.credentialScope).toBe('2019-02-25/cvm/tc3_request');
    expect(signed.authorization).toBe(
      'TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, ' +
        'SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168',
    );
  });

  it('is what the emulator computes for the same example', () => {
    const expected = serverTc3Signature({
      secretKey: docExample.secretKey,
      timestamp: docExample.timestamp,
      signedHeaders: ['content-type', 'host'],
      headers: { 'content-type': 'application/json; charset=utf-8', host: docExample.host },
      body: docExample.payload,
      service: 'cvm',
    });
    expect(expected.signature).toBe('72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168');
  });

  it('takes the scope date from the UTC date of the timestamp, not the local one', () => {
    // 00:30 in Beijing on 2 January is still 1 January in UTC.
    const timestamp = Date.parse('2024-01-02T00:30:00+08:00') / 1000;
    expect(signTc3({ ...docExample, service: 'sms', timestamp }).credentialScope).toBe('2024-01-01/sms/tc3_request');
  });
});

describe('Tencent template parameters', () => {
  const values = (params?: Record<string, string>, paramName = 'code') =>
    positionalTemplateValues({ content: '482913', params }, paramName);

  it('puts the content at {1}, params keyed "1", "2"… in their places, and params win', () => {
    expect(values()).toEqual(['482913']);
    expect(values({ 2: '5' })).toEqual(['482913', '5']);
    expect(values({ 2: '5', 1: '999999' })).toEqual(['999999', '5']);
    expect(values({ 1: 'a' }, '2')).toEqual(['a', '482913']);
  });

  it('takes named params in the order given, after the content', () => {
    expect(values({ minutes: '5' })).toEqual(['482913', '5']);
    expect(values({ minutes: '5', code: '999999' })).toEqual(['999999', '5']);
    expect(values({ minutes: '5' }, '1')).toEqual(['482913', '5']);
  });

  it('refuses numbered and named params together, and gaps, with a permanent error that says so', () => {
    expect(() => values({ 2: '5', minutes: '5' })).toThrow(ChannelError);
    expect(() => values({ 2: '5', minutes: '5' })).toThrow(/all numbered .* or all named/);
    expect(() => values({ 3: 'x' })).toThrow(/"2" is missing/);
  });
});

describe('Tencent error classification', () => {
  it.each([
    ['LimitExceeded.PhoneNumberThirtySecondLimit', 'rate_limited'],
    ['LimitExceeded.PhoneNumberOneHourLimit', 'rate_limited'],
    ['LimitExceeded.PhoneNumberDailyLimit', 'rate_limited'],
    ['LimitExceeded.PhoneNumberSameContentDailyLimit', 'rate_limited'],
    ['LimitExceeded.DeliveryFrequencyLimit', 'rate_limited'],
    ['LimitExceeded.AppDailyLimit', 'permanent'],
    ['LimitExceeded.DailyLimit', 'permanent'],
    ['InvalidParameterValue.IncorrectPhoneNumber', 'permanent'],
    ['InvalidParameterValue.TemplateParameterFormatError', 'permanent'],
    ['InvalidParameterValue.ContentLengthLimit', 'permanent'],
    ['LimitExceeded.PhoneNumberCountLimit', 'permanent'],
    ['MissingParameter.EmptyPhoneNumberSet', 'permanent'],
    ['FailedOperation.InsufficientBalanceInSmsPackage', 'permanent'],
    ['FailedOperation.SignatureIncorrectOrUnapproved', 'permanent'],
    ['FailedOperation.TemplateIncorrectOrUnapproved', 'permanent'],
    ['FailedOperation.ContainSensitiveWord', 'permanent'],
    ['FailedOperation.PhoneNumberInBlacklist', 'permanent'],
    ['AuthFailure.SignatureFailure', 'permanent'],
    ['AuthFailure.SecretIdNotFound', 'permanent'],
    ['UnauthorizedOperation.SmsSdkAppIdVerifyFail', 'permanent'],
    ['UnauthorizedOperation.RequestIpNotInWhitelist', 'permanent'],
    ['AuthFailure.SignatureExpire', 'permanent'],
    ['InternalError.Timeout', 'retryable'],
    ['InternalError.OtherError', 'retryable'],
    ['InternalError.SendAndRecvFail', 'retryable'],
    ['RequestLimitExceeded', 'retryable'],
    ['SomethingNew', 'permanent'],
  ])('%s is %s', (code, kind) => {
    expect(classifyTencentError(code).kind).toBe(kind);
  });

  it('gives per-number limits their window and retries unknown codes only on 5xx', () => {
    expect(classifyTencentError('LimitExceeded.PhoneNumberThirtySecondLimit').retryAfterMs).toBe(30_000);
    expect(classifyTencentError('SomethingNew', 503).kind).toBe('retryable');
  });
});

const secretId = 'AKIDEmulatorSecretId0123';
const secretKey = 'emulator-secret-key-abcdef';
const sendSms = `mutation($input: SendSmsInput!) {
  sendSms(input: $input) { __typename ... on Delivery { ${deliveryFields} } ... on Error { message } }
}`;

function tencentEnv(emulator: TencentSmsEmulator, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    SMS_PROVIDER: 'tencent',
    TENCENT_SECRET_ID: secretId,
    TENCENT_SECRET_KEY: secretKey,
    TENCENT_SMS_SDK_APP_ID: '1400006666',
    TENCENT_SMS_SIGN_NAME: '通知网关',
    TENCENT_SMS_TEMPLATE_ID: '1110011',
    TENCENT_SMS_ENDPOINT: emulator.url,
    SMS_LIMIT_PER_MINUTE: '1000',
    SMS_LIMIT_PER_HOUR: '1000',
    SMS_LIMIT_PER_DAY: '1000',
    ...overrides,
  };
}

function channelOptions(emulator: TencentSmsEmulator, overrides: Partial<TencentSmsOptions> = {}): TencentSmsOptions {
  return {
    secretId,
    secretKey,
    sdkAppId: '1400006666',
    signName: '通知网关',
    templateId: '1110011',
    region: 'ap-guangzhou',
    endpoint: emulator.url,
    templateParam: 'code',
    timeoutMs: 2000,
    ...overrides,
  };
}

async function send(gateway: TestGateway, input: Record<string, unknown>) {
  const sent = await mutationResult(gateway, sendSms, input);
  expect(sent.__typename).toBe('Delivery');
  return sent;
}

describe('sendSms through Tencent (against the emulator)', () => {
  let emulator: TencentSmsEmulator;
  let gateway: TestGateway;
  const forMobile = (phone: string) => emulator.requests.filter((request) => request.phone === phone);

  beforeAll(async () => {
    emulator = await startTencentSmsEmulator({ secretId, secretKey, sdkAppId: '1400006666' });
    gateway = await startGateway({ env: tencentEnv(emulator) });
  });
  afterAll(async () => {
    await gateway.close();
    await emulator.close();
  });

  it('sends the code as {1} and answers SENT with the SerialNo', async () => {
    const sent = await send(gateway, { mobile: '13800138001', content: '482913' });
    expect(sent).toMatchObject({ status: 'SENT', attempts: 1, provider: 'tencent', lastError: null });

    const received = emulator.messages.at(-1)!;
    expect(received).toMatchObject({
      code: 'Ok',
      secretId,
      action: 'SendSms',
      version: '2021-01-11',
      region: 'ap-guangzhou',
      phone: '+8613800138001',
      sdkAppId: '1400006666',
      signName: '通知网关',
      templateId: '1110011',
      templateParams: ['482913'],
      sessionContext: sent.id,
    });
    expect(received.body!.PhoneNumberSet).toEqual(['+8613800138001']);
    expect(received.signature).toMatch(/^[0-9a-f]{64}$/);
    expect(sent.providerMessageId).toBe(received.serialNo);
    expect(sent.providerMessageId).toMatch(/^\d+:\d+$/);

    const logs = JSON.stringify(gateway.logs);
    expect(logs).not.toContain('482913');
    expect(logs).not.toContain(secretKey);
    expect(logs).not.toContain('13800138001');
  });

  it('uses the input template, and params keyed by position override and add to the content', async () => {
    await send(gateway, { mobile: '13800138002', content: '111111', template: '2000002', params: { 2: 5 } });
    expect(emulator.messages.at(-1)).toMatchObject({ phone: '+8613800138002', templateId: '2000002', templateParams: ['111111', '5'] });
    await send(gateway, { mobile: '13800138003', content: '111111', params: { 1: '222222', 2: '10' } });
    expect(emulator.messages.at(-1)).toMatchObject({ phone: '+8613800138003', templateParams: ['222222', '10'] });
  });

  it('takes named params in order after the code, as for Aliyun', async () => {
    await send(gateway, { mobile: '13800138010', content: '333333', params: { minutes: '5' } });
    expect(emulator.messages.at(-1)).toMatchObject({ phone: '+8613800138010', templateParams: ['333333', '5'] });
  });

  it('refuses numbered and named params together before calling Tencent', async () => {
    const sent = await send(gateway, { mobile: '13800138004', content: '111111', params: { 2: '5', minutes: '5' } });
    expect(sent).toMatchObject({ status: 'FAILED', attempts: 1, lastError: { code: 'INVALID_TEMPLATE_PARAMS' } });
    expect(sent.lastError.message).toContain('"minutes"');
    expect(forMobile('+8613800138004')).toEqual([]);
  });

  it('ends FAILED with the per-number code and message from SendStatusSet', async () => {
    emulator.failNext({ code: 'FailedOperation.InsufficientBalanceInSmsPackage' });
    const sent = await send(gateway, { mobile: '13800138005', content: '555555' });
    expect(sent).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      lastError: { code: 'FailedOperation.InsufficientBalanceInSmsPackage', message: '套餐包余量不足，请 购买套餐包。' },
      attemptLog: [{ outcome: 'PERMANENT' }],
    });
  });

  it('ends FAILED with the code and message of a request-level Error', async () => {
    emulator.failNext({ code: 'FailedOperation.TemplateIncorrectOrUnapproved' });
    const sent = await send(gateway, { mobile: '13800138006', content: '666666' });
    expect(sent).toMatchObject({ status: 'FAILED', attempts: 1, lastError: { code: 'FailedOperation.TemplateIncorrectOrUnapproved' } });
    expect(sent.lastError.message).toMatch(/^模板未审批或不存在/);
  });

  it('retries InternalError.Timeout and is SENT on the second attempt', async () => {
    emulator.failNext({ code: 'InternalError.Timeout' });
    const first = await send(gateway, { mobile: '13800138007', content: '777777' });
    expect(first).toMatchObject({ status: 'RETRYING', attempts: 1, lastError: { code: 'InternalError.Timeout' } });
    const done = await deliveryWhen(gateway, first.id, (d) => d.status === 'SENT');
    expect(done).toMatchObject({ attempts: 2, providerMessageId: emulator.messages.at(-1)!.serialNo });
    expect(forMobile('+8613800138007').map((request) => request.code)).toEqual(['InternalError.Timeout', 'Ok']);
  });

  it('retries an HTTP 502 and RequestLimitExceeded', async () => {
    emulator.failNext({ httpStatus: 502 });
    emulator.failNext({ code: 'RequestLimitExceeded' });
    const first = await send(gateway, { mobile: '13800138008', content: '888888' });
    expect(first).toMatchObject({ status: 'RETRYING', lastError: { code: 'HTTP_502' } });
    const done = await deliveryWhen(gateway, first.id, (d) => d.status === 'SENT');
    expect(done.attemptLog.map((attempt: { providerCode: string | null }) => attempt.providerCode)).toEqual([
      'HTTP_502',
      'RequestLimitExceeded',
      null,
    ]);
  });

  it('fails at once, without a retry, when Tencent’s 30-second per-number limit answers', async () => {
    expect((await send(gateway, { mobile: '13800138009', content: '999999' })).status).toBe('SENT');
    const second = await send(gateway, { mobile: '13800138009', content: '999998' });
    expect(second).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      nextAttemptAt: null,
      lastError: { code: 'LimitExceeded.PhoneNumberThirtySecondLimit' },
      attemptLog: [{ outcome: 'RATE_LIMITED' }],
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await fetchDelivery(gateway, second.id)).toMatchObject({ status: 'FAILED', attempts: 1 });
    expect(forMobile('+8613800138009').map((request) => request.code)).toEqual(['Ok', 'LimitExceeded.PhoneNumberThirtySecondLimit']);
  });
});

describe('Tencent with wrong credentials or clock', () => {
  let emulator: TencentSmsEmulator;
  beforeAll(async () => {
    emulator = await startTencentSmsEmulator({ secretId, secretKey });
  });
  afterAll(() => emulator.close());

  it('ends FAILED with AuthFailure.SignatureFailure for a wrong secret key', async () => {
    const gateway = await startGateway({ env: tencentEnv(emulator, { TENCENT_SECRET_KEY: 'not-the-key' }) });
    try {
      const sent = await send(gateway, { mobile: '13900139001', content: '246810' });
      expect(sent).toMatchObject({
        status: 'FAILED',
        attempts: 1,
        lastError: {
          code: 'AuthFailure.SignatureFailure',
          message: 'The provided credentials could not be validated. Please check your signature is correct.',
        },
      });
      expect(emulator.requests.at(-1)).toMatchObject({ code: 'AuthFailure.SignatureFailure', phone: '+8613900139001' });
      const logs = JSON.stringify(gateway.logs);
      expect(logs).not.toContain('246810');
      expect(logs).not.toContain('not-the-key');
    } finally {
      await gateway.close();
    }
  });

  it('ends FAILED with AuthFailure.SecretIdNotFound for an unknown SecretId', async () => {
    const gateway = await startGateway({ env: tencentEnv(emulator, { TENCENT_SECRET_ID: 'AKIDUnknown' }) });
    try {
      const sent = await send(gateway, { mobile: '13900139002', content: '135790' });
      expect(sent).toMatchObject({ status: 'FAILED', lastError: { code: 'AuthFailure.SecretIdNotFound' } });
    } finally {
      await gateway.close();
    }
  });

  it('re-signs once, then fails with AuthFailure.SignatureExpire when the clock is 10 minutes off', async () => {
    const channel = new TencentSmsChannel(channelOptions(emulator, { now: () => Date.now() - 10 * 60_000 }));
    const gateway = await startGateway({ env: tencentEnv(emulator), channels: { SMS: channel } });
    try {
      const before = emulator.requests.length;
      const sent = await send(gateway, { mobile: '13900139003', content: '112233' });
      expect(sent).toMatchObject({ status: 'FAILED', attempts: 1, lastError: { code: 'AuthFailure.SignatureExpire' } });
      expect(sent.lastError.message).toMatch(/^Signature expired/);
      expect(emulator.requests.slice(before).map((request) => request.code)).toEqual([
        'AuthFailure.SignatureExpire',
        'AuthFailure.SignatureExpire',
      ]);
    } finally {
      await gateway.close();
    }
  });

  it('signs correctly between 00:00 and 08:00 Beijing time (scope date in UTC)', async () => {
    const beijingNight = Date.parse('2024-01-02T00:30:00+08:00');
    const nightEmulator = await startTencentSmsEmulator({ secretId, secretKey, now: () => beijingNight });
    const channel = new TencentSmsChannel(channelOptions(nightEmulator, { now: () => beijingNight }));
    try {
      const result = await channel.send(
        { mobile: '+8613900139004', content: '1234' },
        { deliveryId: 'dlv_night', attempt: 1, signal: new AbortController().signal },
      );
      expect(result.providerMessageId).toBe(nightEmulator.messages.at(-1)!.serialNo);
      expect(nightEmulator.messages.at(-1)!.timestamp).toBe(String(beijingNight / 1000));
    } finally {
      await channel.close();
      await nightEmulator.close();
    }
  });

  it('retries a request that hangs past PROVIDER_TIMEOUT_MS', async () => {
    const gateway = await startGateway({ env: tencentEnv(emulator, { PROVIDER_TIMEOUT_MS: '300' }) });
    try {
      emulator.failNext({ hang: true });
      const first = await send(gateway, { mobile: '13900139005', content: '445566' });
      expect(first).toMatchObject({ status: 'RETRYING', lastError: { code: 'ETIMEDOUT' } });
      const done = await deliveryWhen(gateway, first.id, (d) => d.status === 'SENT');
      expect(done.attempts).toBe(2);
    } finally {
      await gateway.close();
    }
  });
});

describe('the Tencent emulator checks what it is sent', () => {
  let emulator: TencentSmsEmulator;
  let channel: TencentSmsChannel;
  const context = (deliveryId: string) => ({ deliveryId, attempt: 1, signal: new AbortController().signal });

  beforeAll(async () => {
    emulator = await startTencentSmsEmulator({ secretId, secretKey, templates: { 1110011: 1 } });
    channel = new TencentSmsChannel(channelOptions(emulator));
  });
  afterAll(async () => {
    await channel.close();
    await emulator.close();
  });

  const post = async (payload: Record<string, unknown>, tamper?: (body: string) => string) => {
    const body = JSON.stringify(payload);
    const host = new URL(emulator.url).host;
    const timestamp = Math.floor(Date.now() / 1000);
    const { authorization } = signTc3({ secretId, secretKey, service: 'sms', host, timestamp, payload: body });
    const response = await fetch(`${emulator.url}/`, {
      method: 'POST',
      headers: {
        authorization,
        'content-type': 'application/json; charset=utf-8',
        'x-tc-action': 'SendSms',
        'x-tc-version': '2021-01-11',
        'x-tc-timestamp': String(timestamp),
        'x-tc-region': 'ap-guangzhou',
      },
      body: tamper ? tamper(body) : body,
    });
    expect(response.status).toBe(200);
    return (await response.json()).Response;
  };
  const payload = (phone: string, extra: Record<string, unknown> = {}) => ({
    PhoneNumberSet: [phone],
    SmsSdkAppId: '1400006666',
    SignName: '通知网关',
    TemplateId: '1110011',
    TemplateParamSet: ['1234'],
    ...extra,
  });

  it('answers Tencent’s success body', async () => {
    const answer = await post(payload('+8613700137001', { SessionContext: 'ctx-1' }));
    expect(Object.keys(answer).sort()).toEqual(['RequestId', 'SendStatusSet']);
    expect(Object.keys(answer.SendStatusSet[0]).sort()).toEqual(['Code', 'Fee', 'IsoCode', 'Message', 'PhoneNumber', 'SerialNo', 'SessionContext']);
    expect(answer.SendStatusSet[0]).toMatchObject({ Code: 'Ok', Message: 'send success', PhoneNumber: '+8613700137001', SessionContext: 'ctx-1', IsoCode: 'CN', Fee: 1 });
  });

  it('refuses a body changed after signing', async () => {
    const answer = await post(payload('+8613700137002'), (body) => body.replace('1234', '9999'));
    expect(Object.keys(answer).sort()).toEqual(['Error', 'RequestId']);
    expect(answer.Error.Code).toBe('AuthFailure.SignatureFailure');
  });

  it('answers per-number and request-level parameter errors', async () => {
    expect((await post(payload('+8612345678901'))).SendStatusSet[0].Code).toBe('InvalidParameterValue.IncorrectPhoneNumber');
    expect((await post(payload('+8613700137003', { PhoneNumberSet: [] }))).Error.Code).toBe('MissingParameter.EmptyPhoneNumberSet');
    expect((await post(payload('+8613700137004', { TemplateId: '999' }))).Error.Code).toBe('FailedOperation.TemplateIncorrectOrUnapproved');
    expect((await post(payload('+8613700137005', { TemplateParamSet: ['1', '2'] }))).Error.Code).toBe(
      'FailedOperation.TemplateParamSetNotMatchApprovedTemplate',
    );
  });

  it('maps an illegal number to a permanent ChannelError', async () => {
    const failure = await channel.send({ mobile: '+8612345678901', content: '1234' }, context('dlv_illegal')).catch((error) => error);
    expect(failure).toBeInstanceOf(ChannelError);
    expect(failure).toMatchObject({ kind: 'permanent', code: 'InvalidParameterValue.IncorrectPhoneNumber' });
  });

  it('counts 1 per 30 s per number, and can be told not to', async () => {
    await channel.send({ mobile: '+8613700137010', content: '1234' }, context('dlv_a'));
    const limited = await channel.send({ mobile: '+8613700137010', content: '1234' }, context('dlv_b')).catch((error) => error);
    expect(limited).toMatchObject({ kind: 'rate_limited', code: 'LimitExceeded.PhoneNumberThirtySecondLimit', retryAfterMs: 30_000 });

    const unlimited = await startTencentSmsEmulator({ secretId, secretKey, limits: false });
    const free = new TencentSmsChannel(channelOptions(unlimited));
    try {
      for (const id of ['dlv_1', 'dlv_2', 'dlv_3']) await free.send({ mobile: '+8613700137010', content: '1234' }, context(id));
      expect(unlimited.messages.map((message) => message.sessionContext)).toEqual(['dlv_1', 'dlv_2', 'dlv_3']);
    } finally {
      await free.close();
      await unlimited.close();
    }
  });
});
