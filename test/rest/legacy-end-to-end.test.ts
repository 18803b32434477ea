import { afterAll, beforeAll, expect, it } from 'vitest';
import { errorCatalog } from '../../src/errors';
import { startAliyunSmsEmulator, type AliyunSmsEmulator } from '../peers/aliyun-sms-emulator';
import { startDingTalkEmulator, type DingTalkEmulator } from '../peers/ding-talk-emulator';
import { startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import { describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';
import { legacyRequest, query } from './legacy-client';

// Every hostile piece at once: raw +, %2B, %26, %3D, %25, %0A, a 4-byte emoji, Chinese.
const rawContent = 'a+b%2Bc%26d%3De%25f%0Ag%F0%9F%98%80%E4%B8%AD%E6%96%87';
const decodedContent = 'a b+c&d=e%f\ng😀中文';

describeOnStores('legacy REST end to end: what the SMTP server, DingTalk and Aliyun SMS received', (kind) => {
  let gateway: AnyGateway;
  let ding: DingTalkEmulator;
  let smtp: SmtpSink;
  let aliyun: AliyunSmsEmulator;
  let base: string;
  const robot = { accessToken: 'e2e-robot-token', secret: 'SECe2e0123456789abcdef0123456789abcdef' };
  const send = (rawPath: string) => legacyRequest(base, rawPath);

  beforeAll(async () => {
    ding = await startDingTalkEmulator({ robots: { [robot.accessToken]: robot.secret } });
    smtp = await startSmtpSink();
    aliyun = await startAliyunSmsEmulator({ accessKeyId: 'e2e-key', accessKeySecret: 'e2e-secret' });
    gateway = await startGatewayOn(kind, {
      env: {
        DINGTALK_BASE_URL: ding.url,
        SMTP_URL: smtp.url,
        MAIL_FROM: 'notify-gateway <notify@example.com>',
        SMS_PROVIDER: 'aliyun',
        ALIYUN_ACCESS_KEY_ID: 'e2e-key',
        ALIYUN_ACCESS_KEY_SECRET: 'e2e-secret',
        ALIYUN_SMS_SIGN_NAME: '通知网关',
        ALIYUN_SMS_TEMPLATE_CODE: 'SMS_000001',
        ALIYUN_SMS_ENDPOINT: aliyun.url,
      },
    });
    base = await gateway.listen();
  });
  afterAll(async () => {
    await gateway?.close();
    await Promise.all([ding?.close(), smtp?.close(), aliyun?.close()]);
  });

  it('ding: the emulator checked the signature and received the content exactly', async () => {
    const { body } = await send(
      `/api/third/ding/sendMsg?accessToken=${robot.accessToken}&secret=${robot.secret}&content=${rawContent}`,
    );
    expect(body).toEqual({ code: 1000, data: 'sent', deliveryId: expect.stringMatching(/^dlv_/) });
    expect(ding.messages).toHaveLength(1);
    expect(ding.messages[0]).toMatchObject({ accessToken: robot.accessToken, body: { msgtype: 'text', text: { content: decodedContent } } });
  });

  it('ding: a wrong secret is refused by DingTalk, and the legacy answer carries its reason', async () => {
    const { body } = await send(`/api/third/ding/sendMsg?${query({ ...robot, secret: 'SECwrong', content: 'x' })}`);
    expect(body).toEqual({ code: errorCatalog.PROVIDER_REJECTED.restCode, data: 'sign not match (310000)', deliveryId: expect.any(String) });
    expect(ding.messages).toHaveLength(1);
  });

  it('email: the SMTP server received the message for every address, content and subject intact', async () => {
    const { body } = await send(
      `/api/third/email/sendMsg?email=ops%40example.com%3Bdba%40example.com&subject=%E5%91%8A%E8%AD%A6+%2B1&content=${rawContent}`,
    );
    expect(body).toMatchObject({ code: 1000, data: 'sent' });
    const [message] = smtp.messagesFor(body.deliveryId!);
    expect(message!.envelope.rcptTo).toEqual(['ops@example.com', 'dba@example.com']);
    expect(message!.parsed.subject).toBe('告警 +1');
    expect(message!.parsed.text?.replace(/\n$/, '')).toBe(decodedContent);
  });

  it('email: a recipient the server refuses for good gives the provider-rejected code with its reply', async () => {
    smtp.fail({ stage: 'rcptTo', code: 550, message: 'No such user here', times: 1 });
    const { body } = await send(`/api/third/email/sendMsg?${query({ email: 'nobody@example.com', content: 'x' })}`);
    expect(body.code).toBe(errorCatalog.PROVIDER_REJECTED.restCode);
    expect(body.data).toContain('No such user here');
    expect(body.deliveryId).toMatch(/^dlv_/);
  });

  it('sms: Aliyun received the number and the content as the template parameter', async () => {
    const { body } = await send(`/api/third/sms/sendMsg?mobile=13800138000&content=${encodeURIComponent('您的验证码 246810')}`);
    expect(body).toMatchObject({ code: 1000, data: 'sent' });
    expect(aliyun.messages).toHaveLength(1);
    expect(aliyun.messages[0]!.phone).toMatch(/13800138000$/);
    expect(aliyun.messages[0]!.templateParam).toEqual({ code: '您的验证码 246810' });
    expect(aliyun.messages[0]!.signName).toBe('通知网关');
  });

  it('sms: an error Aliyun gives for good is the provider-rejected code with its message', async () => {
    aliyun.failNext({ code: 'isv.MOBILE_NUMBER_ILLEGAL' });
    const { body } = await send(`/api/third/sms/sendMsg?${query({ mobile: '13900139000', content: '135790' })}`);
    expect(body.code).toBe(errorCatalog.PROVIDER_REJECTED.restCode);
    expect(body.data).toContain('非法手机号');
    expect(body.data).toContain('isv.MOBILE_NUMBER_ILLEGAL');
    expect(body.data).not.toContain('135790');
  });
});
