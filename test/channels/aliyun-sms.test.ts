import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChannelError } from '../../src/channels/channel';
import {
  AliyunSmsChannel,
  aliyunPhoneNumber,
  aliyunStringToSign,
  aliyunTimestamp,
  canonicalizedQuery,
  classifyAliyunError,
  percentEncode,
  signAliyunRpc,
} from '../../src/channels/aliyun-sms';
import { serverSignature, startAliyunSmsEmulator, type AliyunSmsEmulator } from '../peers/aliyun-sms-emulator';
import { deliveryFields, deliveryWhen, fetchDelivery, mutationResult, startGateway, type TestGateway } from '../support/gateway';

// help.aliyun.com/document_detail/101343: the SMS example with its published signature.
const smsExample = {
  AccessKeyId: 'testId',
  Action: 'SendSms',
  Format: 'XML',
  OutId: '123',
  PhoneNumbers: '15300000001',
  RegionId: 'cn-hangzhou',
  SignName: '阿里云短信测试专用',
  SignatureMethod: 'HMAC-SHA1',
  SignatureNonce: '45e25e9b-0a6f-4070-8c85-2956eda1b466',
  SignatureVersion: '1.0',
  TemplateCode: 'SMS_71390007',
  TemplateParam: '{"customer":"test"}',
  Timestamp: '2017-07-12T02:42:19Z',
  Version: '2017-05-25',
};
// developer.aliyun.com/ask/210168: the ECS DescribeRegions example.
const ecsExample = {
  AccessKeyId: 'testid',
  Action: 'DescribeRegions',
  Format: 'XML',
  SignatureMethod: 'HMAC-SHA1',
  SignatureNonce: '3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf',
  SignatureVersion: '1.0',
  Version: '2014-05-26',
};

describe('Aliyun RPC signature v1', () => {
  it('reproduces the published SMS example, in the gateway and in the emulator', () => {
    expect(signAliyunRpc('GET', smsExample, 'testSecret')).toBe('zJDF+Lrzhj/ThnlvIToysFRq6t4=');
    expect(serverSignature('GET', smsExample, 'testSecret')).toBe('zJDF+Lrzhj/ThnlvIToysFRq6t4=');
    // Signature itself is never signed.
    expect(signAliyunRpc('GET', { ...smsExample, Signature: 'x' }, 'testSecret')).toBe('zJDF+Lrzhj/ThnlvIToysFRq6t4=');
  });

  it('reproduces the published ECS example (TimeStamp and Timestamp spellings)', () => {
    expect(signAliyunRpc('GET', { ...ecsExample, TimeStamp: '2016-02-23T12:46:24Z' }, 'testsecret')).toBe('CT9X0VtwR86fNWSnsc6v8YGOjuE=');
    expect(signAliyunRpc('GET', { ...ecsExample, Timestamp: '2016-02-23T12:46:24Z' }, 'testsecret')).toBe('OLeaidS1JvxuMvnyHOwuJ+uX5qY=');
  });

  it('percent-encodes UTF-8 as RFC 3986 and encodes the joined query a second time', () => {
    expect(percentEncode('a b*c~d+e/f')).toBe('a%20b%2Ac~d%2Be%2Ff');
    expect(percentEncode("!'()")).toBe('%21%27%28%29');
    expect(percentEncode('阿')).toBe('%E9%98%BF');
    expect(canonicalizedQuery({ b: '2', a: '1:2' })).toBe('a=1%3A2&b=2');
    expect(aliyunStringToSign('POST', { Timestamp: '2017-07-12T02:42:19Z' })).toBe('POST&%2F&Timestamp%3D2017-07-12T02%253A42%253A19Z');
  });

  it('writes the timestamp in UTC to the second, and mainland numbers in national form', () => {
    expect(aliyunTimestamp(Date.UTC(2024, 0, 2, 3, 4, 5, 678))).toBe('2024-01-02T03:04:05Z');
    expect(aliyunPhoneNumber('+8613800138000')).toBe('13800138000');
    expect(aliyunPhoneNumber('+85291234567')).toBe('85291234567');
  });
});

describe('Aliyun error classification', () => {
  it.each([
    ['isv.BUSINESS_LIMIT_CONTROL', 'rate_limited'],
    ['isv.DAY_LIMIT_CONTROL', 'permanent'],
    ['isv.MONTH_LIMIT_CONTROL', 'permanent'],
    ['isv.MOBILE_NUMBER_ILLEGAL', 'permanent'],
    ['isv.MOBILE_COUNT_OVER_LIMIT', 'permanent'],
    ['isv.TEMPLATE_MISSING_PARAMETERS', 'permanent'],
    ['isv.INVALID_JSON_PARAM', 'permanent'],
    ['isv.PARAM_LENGTH_LIMIT', 'permanent'],
    ['isv.PARAM_NOT_SUPPORT_URL', 'permanent'],
    ['isv.SMS_TEMPLATE_ILLEGAL', 'permanent'],
    ['isv.SMS_SIGNATURE_ILLEGAL', 'permanent'],
    ['isv.SIGN_STATE_ILLEGAL', 'permanent'],
    ['isv.SMS_SIGNATURE_SCENE_ILLEGAL', 'permanent'],
    ['isv.SMS_CONTENT_ILLEGAL', 'permanent'],
    ['isv.BLACK_KEY_CONTROL_LIMIT', 'permanent'],
    ['isv.AMOUNT_NOT_ENOUGH', 'permanent'],
    ['isv.OUT_OF_SERVICE', 'permanent'],
    ['isp.RAM_PERMISSION_DENY', 'permanent'],
    ['isv.PRODUCT_UN_SUBSCRIPT', 'permanent'],
    ['isp.SYSTEM_ERROR', 'retryable'],
    ['Throttling.User', 'retryable'],
    ['Throttling.Api', 'retryable'],
    ['SignatureDoesNotMatch', 'permanent'],
    ['InvalidAccessKeyId.NotFound', 'permanent'],
    ['MissingPhoneNumbers', 'permanent'],
    ['InvalidTimeStamp.Expired', 'permanent'],
    ['SignatureNonceUsed', 'permanent'],
    ['isv.SOMETHING_NEW', 'permanent'],
    ['isp.SOMETHING_NEW', 'retryable'],
  ])('%s is %s', (code, kind) => {
    expect(classifyAliyunError(code).kind).toBe(kind);
  });

  it('reads the window of a flow-control answer and retries unknown codes only on 5xx', () => {
    expect(classifyAliyunError('isv.BUSINESS_LIMIT_CONTROL', '触发分钟级流控Permits:1')).toEqual({ kind: 'rate_limited', retryAfterMs: 60_000 });
    expect(classifyAliyunError('isv.BUSINESS_LIMIT_CONTROL', '触发小时级流控Permits:5').retryAfterMs).toBe(3_600_000);
    expect(classifyAliyunError('isv.BUSINESS_LIMIT_CONTROL', '触发天级流控Permits:10').retryAfterMs).toBe(86_400_000);
    expect(classifyAliyunError('Whatever', '', 502).kind).toBe('retryable');
    expect(classifyAliyunError('Whatever', '', 400).kind).toBe('permanent');
  });
});

const keyId = 'LTAI5tEmulatorKey';
const keySecret = 'emulator-secret-0123456789';
const sendSms = `mutation($input: SendSmsInput!) {
  sendSms(input: $input) { __typename ... on Delivery { ${deliveryFields} } ... on Error { message } }
}`;

function aliyunEnv(emulator: AliyunSmsEmulator, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    SMS_PROVIDER: 'aliyun',
    ALIYUN_ACCESS_KEY_ID: keyId,
    ALIYUN_ACCESS_KEY_SECRET: keySecret,
    ALIYUN_SMS_SIGN_NAME: '通知网关',
    ALIYUN_SMS_TEMPLATE_CODE: 'SMS_154950909',
    ALIYUN_SMS_ENDPOINT: emulator.url,
    SMS_LIMIT_PER_MINUTE: '1000',
    SMS_LIMIT_PER_HOUR: '1000',
    SMS_LIMIT_PER_DAY: '1000',
    ...overrides,
  };
}

async function send(gateway: TestGateway, input: Record<string, unknown>) {
  const sent = await mutationResult(gateway, sendSms, input);
  expect(sent.__typename).toBe('Delivery');
  return sent;
}

describe('sendSms through Aliyun (against the emulator)', () => {
  let emulator: AliyunSmsEmulator;
  let gateway: TestGateway;
  const forMobile = (national: string) => emulator.requests.filter((request) => request.phone === national);

  beforeAll(async () => {
    emulator = await startAliyunSmsEmulator({ accessKeyId: keyId, accessKeySecret: keySecret });
    gateway = await startGateway({ env: aliyunEnv(emulator) });
  });
  afterAll(async () => {
    await gateway.close();
    await emulator.close();
  });

  it('sends the code as the template parameter and answers SENT with the BizId', async () => {
    const sent = await send(gateway, { mobile: '+8613800138001', content: '482913' });
    expect(sent).toMatchObject({ status: 'SENT', attempts: 1, provider: 'aliyun', lastError: null });

    const received = emulator.messages.at(-1)!;
    expect(received).toMatchObject({
      method: 'POST',
      code: 'OK',
      accessKeyId: keyId,
      phone: '13800138001',
      signName: '通知网关',
      templateCode: 'SMS_154950909',
      templateParam: { code: '482913' },
      outId: sent.id,
    });
    expect(received.params).toMatchObject({
      Action: 'SendSms',
      Version: '2017-05-25',
      Format: 'JSON',
      RegionId: 'cn-hangzhou',
      SignatureMethod: 'HMAC-SHA1',
      SignatureVersion: '1.0',
    });
    expect(received.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    // The signature the emulator accepted is the one it recomputed from what it received.
    expect(received.signature).toBe(serverSignature('POST', received.params, keySecret));
    expect(sent.providerMessageId).toBe(received.bizId);
    expect(sent.providerMessageId).toMatch(/^\d+\^0$/);

    const logs = JSON.stringify(gateway.logs);
    expect(logs).not.toContain('482913');
    expect(logs).not.toContain(keySecret);
    expect(logs).not.toContain('13800138001');
  });

  it('uses the input template, and params override and add to the content', async () => {
    await send(gateway, {
      mobile: '13800138002',
      content: '111111',
      template: 'SMS_200000002',
      params: { code: '222222', minutes: 5 },
    });
    expect(emulator.messages.at(-1)).toMatchObject({
      phone: '13800138002',
      templateCode: 'SMS_200000002',
      templateParam: { code: '222222', minutes: '5' },
      templateParamRaw: '{"code":"222222","minutes":"5"}',
    });
  });

  it('uses a fresh nonce on every request (the emulator refuses a reused one)', async () => {
    await send(gateway, { mobile: '13800138003', content: '333333' });
    await send(gateway, { mobile: '13800138004', content: '444444' });
    const nonces = emulator.requests.map((request) => request.signatureNonce);
    expect(new Set(nonces).size).toBe(nonces.length);
  });

  it('ends FAILED with Aliyun’s Code and Message on a permanent business error', async () => {
    emulator.failNext({ code: 'isv.AMOUNT_NOT_ENOUGH' });
    const sent = await send(gateway, { mobile: '13800138005', content: '555555' });
    expect(sent).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      lastError: { code: 'isv.AMOUNT_NOT_ENOUGH', message: '账户余额不足' },
      attemptLog: [{ number: 1, outcome: 'PERMANENT', providerCode: 'isv.AMOUNT_NOT_ENOUGH' }],
    });
  });

  it('retries isp.SYSTEM_ERROR and is SENT on the second attempt', async () => {
    emulator.failNext({ code: 'isp.SYSTEM_ERROR' });
    const first = await send(gateway, { mobile: '13800138006', content: '666666' });
    expect(first).toMatchObject({ status: 'RETRYING', attempts: 1, lastError: { code: 'isp.SYSTEM_ERROR' } });
    const done = await deliveryWhen(gateway, first.id, (d) => d.status === 'SENT');
    expect(done).toMatchObject({ attempts: 2, providerMessageId: emulator.messages.at(-1)!.bizId });
    expect(done.attemptLog.map((attempt: { outcome: string }) => attempt.outcome)).toEqual(['RETRYABLE', 'SENT']);
    expect(forMobile('13800138006').map((request) => request.code)).toEqual(['isp.SYSTEM_ERROR', 'OK']);
  });

  it('retries an HTTP 503 without Aliyun’s JSON and a gateway-level Throttling.User', async () => {
    emulator.failNext({ httpStatus: 503 });
    emulator.failNext({ code: 'Throttling.User' });
    const first = await send(gateway, { mobile: '13800138007', content: '777777' });
    expect(first).toMatchObject({ status: 'RETRYING', lastError: { code: 'HTTP_503' } });
    const done = await deliveryWhen(gateway, first.id, (d) => d.status === 'SENT');
    expect(done.attempts).toBe(3);
    expect(done.attemptLog.map((attempt: { providerCode: string | null }) => attempt.providerCode)).toEqual([
      'HTTP_503',
      'Throttling.User',
      null,
    ]);
    expect(forMobile('13800138007').map((request) => request.httpStatus)).toEqual([503, 400, 200]);
  });

  it('fails at once, without a retry, when Aliyun’s per-number flow control answers', async () => {
    const first = await send(gateway, { mobile: '13800138008', content: '888888' });
    expect(first.status).toBe('SENT');
    const second = await send(gateway, { mobile: '13800138008', content: '888889' });
    expect(second).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      nextAttemptAt: null,
      lastError: { code: 'isv.BUSINESS_LIMIT_CONTROL', message: '触发分钟级流控Permits:1' },
      attemptLog: [{ outcome: 'RATE_LIMITED' }],
    });
    // Still one attempt a moment later: the dispatcher never picks it up again.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await fetchDelivery(gateway, second.id)).toMatchObject({ status: 'FAILED', attempts: 1 });
    expect(forMobile('13800138008').map((request) => request.code)).toEqual(['OK', 'isv.BUSINESS_LIMIT_CONTROL']);
  });

  it('re-signs once with a fresh nonce when Aliyun answers SignatureNonceUsed', async () => {
    emulator.failNext({ code: 'SignatureNonceUsed' });
    const sent = await send(gateway, { mobile: '13800138009', content: '999999' });
    expect(sent).toMatchObject({ status: 'SENT', attempts: 1 });
    const requests = forMobile('13800138009');
    expect(requests.map((request) => request.code)).toEqual(['SignatureNonceUsed', 'OK']);
    expect(requests[0].signatureNonce).not.toBe(requests[1].signatureNonce);
  });
});

describe('Aliyun with wrong credentials or clock', () => {
  let emulator: AliyunSmsEmulator;
  beforeAll(async () => {
    emulator = await startAliyunSmsEmulator({ accessKeyId: keyId, accessKeySecret: keySecret });
  });
  afterAll(() => emulator.close());

  it('ends FAILED with SignatureDoesNotMatch for a wrong secret, without the code in lastError or logs', async () => {
    const gateway = await startGateway({ env: aliyunEnv(emulator, { ALIYUN_ACCESS_KEY_SECRET: 'not-the-secret' }) });
    try {
      const sent = await send(gateway, { mobile: '13900139001', content: '246810' });
      expect(sent).toMatchObject({
        status: 'FAILED',
        attempts: 1,
        lastError: { code: 'SignatureDoesNotMatch', message: 'Specified signature is not matched with our calculation.' },
      });
      const answered = emulator.requests.at(-1)!;
      expect(answered).toMatchObject({ code: 'SignatureDoesNotMatch', httpStatus: 400, phone: '13900139001' });
      const logs = JSON.stringify(gateway.logs);
      expect(logs).not.toContain('246810');
      expect(logs).not.toContain('not-the-secret');
    } finally {
      await gateway.close();
    }
  });

  it('ends FAILED with InvalidAccessKeyId.NotFound for an unknown key id', async () => {
    const gateway = await startGateway({ env: aliyunEnv(emulator, { ALIYUN_ACCESS_KEY_ID: 'LTAI5tUnknown' }) });
    try {
      const sent = await send(gateway, { mobile: '13900139002', content: '135790' });
      expect(sent).toMatchObject({
        status: 'FAILED',
        lastError: { code: 'InvalidAccessKeyId.NotFound', message: 'Specified access key is not found.' },
      });
      expect(emulator.requests.at(-1)).toMatchObject({ httpStatus: 404 });
    } finally {
      await gateway.close();
    }
  });

  it('re-signs once, then fails with InvalidTimeStamp.Expired when the clock is 20 minutes off', async () => {
    const channel = new AliyunSmsChannel({
      accessKeyId: keyId,
      accessKeySecret: keySecret,
      signName: '通知网关',
      templateCode: 'SMS_154950909',
      endpoint: emulator.url,
      templateParam: 'code',
      timeoutMs: 2000,
      now: () => Date.now() - 20 * 60_000,
    });
    const gateway = await startGateway({ env: aliyunEnv(emulator), channels: { SMS: channel } });
    try {
      const before = emulator.requests.length;
      const sent = await send(gateway, { mobile: '13900139003', content: '112233' });
      expect(sent).toMatchObject({
        status: 'FAILED',
        attempts: 1,
        lastError: { code: 'InvalidTimeStamp.Expired', message: 'Specified time stamp or date value is expired.' },
      });
      expect(emulator.requests.slice(before).map((request) => request.code)).toEqual([
        'InvalidTimeStamp.Expired',
        'InvalidTimeStamp.Expired',
      ]);
    } finally {
      await gateway.close();
    }
  });

  it('retries a request that hangs past PROVIDER_TIMEOUT_MS', async () => {
    const gateway = await startGateway({ env: aliyunEnv(emulator, { PROVIDER_TIMEOUT_MS: '300' }) });
    try {
      emulator.failNext({ hang: true });
      const first = await send(gateway, { mobile: '13900139004', content: '445566' });
      expect(first).toMatchObject({ status: 'RETRYING', lastError: { code: 'ETIMEDOUT' } });
      const done = await deliveryWhen(gateway, first.id, (d) => d.status === 'SENT');
      expect(done.attempts).toBe(2);
    } finally {
      await gateway.close();
    }
  });
});

describe('the Aliyun emulator checks what it is sent', () => {
  let emulator: AliyunSmsEmulator;
  let channel: AliyunSmsChannel;
  const context = (deliveryId: string) => ({ deliveryId, attempt: 1, signal: new AbortController().signal });

  beforeAll(async () => {
    emulator = await startAliyunSmsEmulator({
      accessKeyId: keyId,
      accessKeySecret: keySecret,
      templates: { SMS_154950909: ['code'] },
    });
    channel = new AliyunSmsChannel({
      accessKeyId: keyId,
      accessKeySecret: keySecret,
      signName: '通知网关',
      templateCode: 'SMS_154950909',
      endpoint: emulator.url,
      templateParam: 'code',
      timeoutMs: 2000,
    });
  });
  afterAll(async () => {
    await channel.close();
    await emulator.close();
  });

  const signedQuery = (params: Record<string, string>, secret = keySecret) =>
    new URLSearchParams({ ...params, Signature: signAliyunRpc('GET', params, secret) }).toString();
  const baseParams = () => ({
    Action: 'SendSms',
    Version: '2017-05-25',
    Format: 'JSON',
    RegionId: 'cn-hangzhou',
    AccessKeyId: keyId,
    SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0',
    SignatureNonce: crypto.randomUUID(),
    Timestamp: aliyunTimestamp(Date.now()),
    PhoneNumbers: '13700137001',
    SignName: '通知网关',
    TemplateCode: 'SMS_154950909',
    TemplateParam: '{"code":"1234"}',
  });

  it('accepts a correctly signed GET and answers Aliyun’s success body', async () => {
    const response = await fetch(`${emulator.url}/?${signedQuery(baseParams())}`);
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(Object.keys(body).sort()).toEqual(['BizId', 'Code', 'Message', 'RequestId']);
    expect(body).toMatchObject({ Code: 'OK', Message: 'OK' });
  });

  it('refuses a tampered parameter with the HTTP 400 gateway body', async () => {
    const params = baseParams();
    const query = new URLSearchParams({ ...params, Signature: signAliyunRpc('GET', params, keySecret), PhoneNumbers: '13700137002' });
    const response = await fetch(`${emulator.url}/?${query}`);
    expect(response.status).toBe(400);
    const body = await response.json();
    expect(Object.keys(body).sort()).toEqual(['Code', 'HostId', 'Message', 'Recommend', 'RequestId']);
    expect(body.Code).toBe('SignatureDoesNotMatch');
    expect(body.Message).toContain('server string to sign is:GET&%2F&');
  });

  it('refuses a replayed nonce', async () => {
    const query = signedQuery({ ...baseParams(), PhoneNumbers: '13700137003' });
    expect((await fetch(`${emulator.url}/?${query}`)).status).toBe(200);
    const replay = await fetch(`${emulator.url}/?${query}`);
    expect(replay.status).toBe(400);
    expect((await replay.json()).Code).toBe('SignatureNonceUsed');
  });

  it('answers isv.MOBILE_NUMBER_ILLEGAL, isv.INVALID_JSON_PARAM and isv.TEMPLATE_MISSING_PARAMETERS', async () => {
    const ask = async (params: Record<string, string>) => (await (await fetch(`${emulator.url}/?${signedQuery(params)}`)).json()).Code;
    expect(await ask({ ...baseParams(), PhoneNumbers: '12345' })).toBe('isv.MOBILE_NUMBER_ILLEGAL');
    expect(await ask({ ...baseParams(), PhoneNumbers: '13700137004', TemplateParam: '{"code":1234}' })).toBe('isv.INVALID_JSON_PARAM');
    expect(await ask({ ...baseParams(), PhoneNumbers: '13700137005', TemplateParam: '{"name":"x"}' })).toBe('isv.TEMPLATE_MISSING_PARAMETERS');
    expect(await ask({ ...baseParams(), PhoneNumbers: '13700137006', TemplateCode: 'SMS_1' })).toBe('isv.SMS_TEMPLATE_ILLEGAL');
  });

  it('maps the emulator’s illegal-number answer to a permanent ChannelError', async () => {
    const failure = await channel
      .send({ mobile: '+8612345678901', content: '1234' }, context('dlv_test_illegal'))
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ChannelError);
    expect(failure).toMatchObject({ kind: 'permanent', code: 'isv.MOBILE_NUMBER_ILLEGAL', message: '非法手机号' });
  });

  it('counts flow control per number and can be told not to', async () => {
    const first = await channel.send({ mobile: '+8613700137010', content: '1234' }, context('dlv_a'));
    expect(first.providerMessageId).toBeTruthy();
    const limited = await channel.send({ mobile: '+8613700137010', content: '1234' }, context('dlv_b')).catch((error) => error);
    expect(limited).toMatchObject({ kind: 'rate_limited', code: 'isv.BUSINESS_LIMIT_CONTROL', retryAfterMs: 60_000 });

    const unlimited = await startAliyunSmsEmulator({ accessKeyId: keyId, accessKeySecret: keySecret, limits: false });
    const free = new AliyunSmsChannel({
      accessKeyId: keyId,
      accessKeySecret: keySecret,
      signName: '通知网关',
      templateCode: 'SMS_154950909',
      endpoint: unlimited.url,
      templateParam: 'code',
      timeoutMs: 2000,
    });
    try {
      for (const id of ['dlv_1', 'dlv_2', 'dlv_3']) await free.send({ mobile: '+8613700137010', content: '1234' }, context(id));
      expect(unlimited.messages.map((message) => message.outId)).toEqual(['dlv_1', 'dlv_2', 'dlv_3']);
    } finally {
      await free.close();
      await unlimited.close();
    }
  });

  it('reports a refused connection as retryable', async () => {
    const closed = await startAliyunSmsEmulator({ accessKeyId: keyId, accessKeySecret: keySecret });
    await closed.close();
    const unreachable = new AliyunSmsChannel({
      accessKeyId: keyId,
      accessKeySecret: keySecret,
      signName: '通知网关',
      templateCode: 'SMS_154950909',
      endpoint: closed.url,
      templateParam: 'code',
      timeoutMs: 2000,
    });
    const failure = await unreachable.send({ mobile: '+8613700137011', content: '1234' }, context('dlv_c')).catch((error) => error);
    expect(failure).toMatchObject({ kind: 'retryable', code: 'ECONNREFUSED' });
    expect(failure.message).not.toContain('1234');
    await unreachable.close();
  });
});
