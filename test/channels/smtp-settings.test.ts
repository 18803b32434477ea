import { describe, expect, it } from 'vitest';
import {
  classifySmtpError,
  redactSmtpUrl,
  rejectionNote,
  smtpTransportOptions,
} from '../../src/channels/smtp-email';
import { ConfigError, loadConfig } from '../../src/config';

const options = (url: string, poolSize = 5) => smtpTransportOptions({ url, poolSize, timeoutMs: 3000 });

describe('SMTP_URL → nodemailer pool options', () => {
  it('smtp:// is plain (STARTTLS when offered), with host and port', () => {
    expect(options('smtp://mail.example.com:587')).toMatchObject({
      secure: false,
      host: 'mail.example.com',
      port: 587,
      pool: true,
      maxConnections: 5,
      connectionTimeout: 3000,
      greetingTimeout: 3000,
    });
    expect(options('smtp://mail.example.com').auth).toBeUndefined();
  });

  it('smtps:// sets secure (TLS from the first byte) and decodes the user and password', () => {
    const parsed = options('smtps://alerts%40example.com:p%40ss%3Aw%2Fo%23rd@smtp.example.com:465', 3);
    expect(parsed).toMatchObject({ secure: true, host: 'smtp.example.com', port: 465, maxConnections: 3 });
    expect(parsed.auth).toEqual({ user: 'alerts@example.com', pass: 'p@ss:w/o#rd' });
  });

  it('takes nodemailer options from the query, but SMTP_POOL_SIZE, pooling and silence are not negotiable', () => {
    const parsed = options(
      'smtp://relay.internal:25?name=gw01.example.com&tls.rejectUnauthorized=false&ignoreTLS=true&connectionTimeout=500' +
        '&maxConnections=50&pool=false&debug=true&logger=true',
      4,
    );
    expect(parsed).toMatchObject({
      name: 'gw01.example.com',
      tls: { rejectUnauthorized: false },
      ignoreTLS: true,
      connectionTimeout: 500,
      greetingTimeout: 3000,
      maxConnections: 4,
      pool: true,
      debug: false,
      logger: false,
    });
  });

  it('hides the password when the URL has to be shown', () => {
    expect(redactSmtpUrl('smtps://user:secret@smtp.example.com:465')).toBe('smtps://user:***@smtp.example.com:465');
    expect(redactSmtpUrl('smtp://relay:25')).toBe('smtp://relay:25');
  });
});

describe('email settings are checked at start', () => {
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    return [];
  };

  it('accepts plain, authenticated and smtps URLs, and a display name in MAIL_FROM', () => {
    const config = loadConfig({ SMTP_URL: 'smtps://u:p@smtp.example.com', MAIL_FROM: '"运维告警" <ops@example.com>', SMTP_POOL_SIZE: '3' });
    expect(config.email).toEqual({ smtpUrl: 'smtps://u:p@smtp.example.com', from: '"运维告警" <ops@example.com>', poolSize: 3 });
    expect(loadConfig({}).email).toEqual({ smtpUrl: undefined, from: 'notify-gateway <notify@localhost>', poolSize: 5 });
  });

  it('names each bad setting, without echoing the password', () => {
    const found = problems({ SMTP_URL: 'smtps://user:pa#ss@smtp.example.com', MAIL_FROM: 'alerts', SMTP_POOL_SIZE: '0' });
    expect(found).toHaveLength(3);
    expect(found.join('\n')).toMatch(/SMTP_URL: must name a host/);
    expect(found.join('\n')).toMatch(/MAIL_FROM: must be one address/);
    expect(found.join('\n')).toMatch(/SMTP_POOL_SIZE/);
    expect(found.join('\n')).not.toContain('pa#ss');
    expect(problems({ SMTP_URL: 'http://smtp.example.com' })).toEqual(['SMTP_URL: must be an smtp:// or smtps:// URL']);
    expect(problems({ MAIL_FROM: 'a@example.com, b@example.com' })).toHaveLength(1);
  });
});

describe('SMTP failure classification', () => {
  const reply = (code: string, responseCode: number, response: string, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(`failed: ${response}`), { code, responseCode, response, ...extra });

  it.each([
    ['DATA 450', reply('EMESSAGE', 450, '450 4.2.0 Mailbox busy'), 'retryable', 'SMTP_450', '450 4.2.0 Mailbox busy'],
    ['greeting 421', reply('EPROTOCOL', 421, '421 Too busy'), 'retryable', 'SMTP_421', '421 Too busy'],
    ['MAIL FROM 452', reply('EENVELOPE', 452, '452 Out of storage'), 'retryable', 'SMTP_452', '452 Out of storage'],
    ['DATA 554', reply('EMESSAGE', 554, '554 5.7.1 Spam'), 'permanent', 'SMTP_554', '554 5.7.1 Spam'],
    ['MAIL FROM 530', reply('EENVELOPE', 530, '530 Authentication required'), 'permanent', 'SMTP_530', '530 Authentication required'],
    ['AUTH 535', reply('EAUTH', 535, '535 5.7.8 Bad credentials'), 'permanent', 'EAUTH', 'SMTP login rejected (check the user and password in SMTP_URL): 535 5.7.8 Bad credentials'],
    ['AUTH 454', reply('EAUTH', 454, '454 Temporary authentication failure'), 'retryable', 'EAUTH', 'SMTP login rejected (check the user and password in SMTP_URL): 454 Temporary authentication failure'],
  ])('%s', (_label, error, kind, code, message) => {
    expect(classifySmtpError(error)).toMatchObject({ kind, code, message });
  });

  it.each(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS'])('%s without a reply is retryable and keeps the code', (code) => {
    const failure = classifySmtpError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:25'), { code }));
    expect(failure).toMatchObject({ kind: 'retryable', code, message: 'SMTP server unreachable: connect ECONNREFUSED 127.0.0.1:25' });
  });

  it('an aborted send (the attempt timed out) is retryable; unknown errors too', () => {
    expect(classifySmtpError(Object.assign(new Error('Message sending aborted'), { name: 'AbortError', code: 'EABORT' }))).toMatchObject({
      kind: 'retryable',
      code: 'EABORT',
    });
    expect(classifySmtpError(new Error('Connection pool was closed'))).toMatchObject({ kind: 'retryable', code: 'ECONNECTION' });
  });

  it('all recipients refused: retryable only when every refusal was 4xx', () => {
    const envelope = (...items: [string, number, string][]) =>
      Object.assign(new Error('all recipients were rejected'), {
        code: 'EENVELOPE',
        responseCode: items.at(-1)![1],
        rejectedErrors: items.map(([recipient, responseCode, response]) => ({ recipient, responseCode, response, code: 'EENVELOPE' })),
      });
    expect(classifySmtpError(envelope(['a@x.cn', 450, '450 Greylisted'], ['b@x.cn', 452, '452 Full']))).toMatchObject({
      kind: 'retryable',
      code: 'SMTP_450',
      message: 'All recipients rejected: a@x.cn: 450 Greylisted; b@x.cn: 452 Full',
    });
    expect(classifySmtpError(envelope(['a@x.cn', 450, '450 Greylisted'], ['b@x.cn', 550, '550 No such user']))).toMatchObject({
      kind: 'permanent',
      code: 'SMTP_550',
    });
  });

  it('a partially refused send is reported with each refused address and reply', () => {
    expect(rejectionNote({ accepted: ['a@x.cn'], rejected: [] })).toBeUndefined();
    expect(
      rejectionNote({
        accepted: ['a@x.cn'],
        rejected: ['b@x.cn'],
        rejectedErrors: [Object.assign(new Error('x'), { recipient: 'b@x.cn', response: '550 5.1.1 No such user' })],
      }),
    ).toBe('1 of 2 recipients rejected: b@x.cn: 550 5.1.1 No such user');
  });
});
