import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { closeChannels, createChannels } from '../src/channels';
import { ConfigError, loadConfig } from '../src/config';
import { createLogger } from '../src/logger';

const aliyun = {
  SMS_PROVIDER: 'aliyun',
  ALIYUN_ACCESS_KEY_ID: 'LTAI5tExampleKeyId',
  ALIYUN_ACCESS_KEY_SECRET: 'exampleSecretValue123',
  ALIYUN_SMS_SIGN_NAME: '通知网关',
  ALIYUN_SMS_TEMPLATE_CODE: 'SMS_154950909',
};
const tencent = {
  SMS_PROVIDER: 'tencent',
  TENCENT_SECRET_ID: 'AKIDExampleSecretId',
  TENCENT_SECRET_KEY: 'exampleSecretKey456',
  TENCENT_SMS_SDK_APP_ID: '1400006666',
  TENCENT_SMS_SIGN_NAME: '通知网关',
  TENCENT_SMS_TEMPLATE_ID: '1110011',
};

/** The problems loadConfig reports, or [] when it accepts the settings. */
function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

const silentLogger = () => createLogger({ level: 'silent', pretty: false, destination: new Writable({ write: (_c, _e, done) => done() }) });

describe('SMS settings', () => {
  it('defaults to the development log provider, which needs nothing', () => {
    const config = loadConfig({});
    expect(config.sms).toMatchObject({ provider: 'log', templateParam: 'code' });
  });

  it('names every missing Aliyun setting', () => {
    expect(problems({ SMS_PROVIDER: 'aliyun' })).toEqual([
      'ALIYUN_ACCESS_KEY_ID: is required when SMS_PROVIDER=aliyun',
      'ALIYUN_ACCESS_KEY_SECRET: is required when SMS_PROVIDER=aliyun',
      'ALIYUN_SMS_SIGN_NAME: is required when SMS_PROVIDER=aliyun',
      'ALIYUN_SMS_TEMPLATE_CODE: is required when SMS_PROVIDER=aliyun',
    ]);
  });

  it('names every missing Tencent setting (the region has a default)', () => {
    expect(problems({ SMS_PROVIDER: 'tencent', TENCENT_SECRET_KEY: '   ' })).toEqual([
      'TENCENT_SECRET_ID: is required when SMS_PROVIDER=tencent',
      'TENCENT_SECRET_KEY: is required when SMS_PROVIDER=tencent',
      'TENCENT_SMS_SDK_APP_ID: is required when SMS_PROVIDER=tencent',
      'TENCENT_SMS_SIGN_NAME: is required when SMS_PROVIDER=tencent',
      'TENCENT_SMS_TEMPLATE_ID: is required when SMS_PROVIDER=tencent',
    ]);
  });

  it('reports the provider settings together with problems elsewhere', () => {
    const reported = problems({ SMS_PROVIDER: 'aliyun', PORT: 'eighty', ALIYUN_SMS_ENDPOINT: 'ftp://dysmsapi.aliyuncs.com' });
    expect(reported.some((problem) => problem.startsWith('PORT:'))).toBe(true);
    expect(reported.some((problem) => problem.startsWith('ALIYUN_SMS_ENDPOINT:'))).toBe(true);
    for (const key of ['ALIYUN_ACCESS_KEY_ID', 'ALIYUN_ACCESS_KEY_SECRET', 'ALIYUN_SMS_SIGN_NAME', 'ALIYUN_SMS_TEMPLATE_CODE']) {
      expect(reported).toContain(`${key}: is required when SMS_PROVIDER=aliyun`);
    }
  });

  it('refuses malformed values without echoing them', () => {
    const reported = problems({
      ...aliyun,
      ALIYUN_ACCESS_KEY_ID: ' LTAI5tPasted',
      ALIYUN_ACCESS_KEY_SECRET: '"quotedSecret"',
      ALIYUN_SMS_TEMPLATE_CODE: '154950909',
      SMS_TEMPLATE_PARAM: 'the code',
    });
    expect(reported).toEqual([
      'SMS_TEMPLATE_PARAM: must be a template variable name such as code (for Tencent, a position such as 1)',
      'ALIYUN_ACCESS_KEY_ID: must not start or end with spaces (check how it was pasted)',
      'ALIYUN_ACCESS_KEY_SECRET: must not contain spaces or quotes (check how it was pasted)',
      'ALIYUN_SMS_TEMPLATE_CODE: must be an Aliyun template code such as SMS_154950909',
    ]);
    expect(reported.join('\n')).not.toContain('quotedSecret');

    expect(
      problems({ ...tencent, TENCENT_SMS_SDK_APP_ID: 'sms-app', TENCENT_SMS_TEMPLATE_ID: 'SMS_1', TENCENT_SMS_REGION: 'Guangzhou' }),
    ).toEqual([
      'TENCENT_SMS_SDK_APP_ID: must be the numeric SmsSdkAppId, such as 1400006666',
      'TENCENT_SMS_TEMPLATE_ID: must be a numeric template ID, such as 1110011',
      'TENCENT_SMS_REGION: must be a Tencent Cloud region such as ap-guangzhou',
    ]);
    expect(problems({ ...tencent, TENCENT_SMS_ENDPOINT: 'sms.tencentcloudapi.com' })[0]).toMatch(/^TENCENT_SMS_ENDPOINT:/);
    expect(problems({ SMS_PROVIDER: 'twilio' })[0]).toMatch(/^SMS_PROVIDER:/);
  });

  it('does not ask for the settings of a provider that is not chosen', () => {
    expect(problems(tencent)).toEqual([]);
    expect(problems({ ...aliyun, TENCENT_SMS_SDK_APP_ID: 'not checked' })).toEqual([]);
  });

  it('loads complete settings with the production endpoints by default', () => {
    expect(loadConfig(aliyun).sms.aliyun).toEqual({
      accessKeyId: 'LTAI5tExampleKeyId',
      accessKeySecret: 'exampleSecretValue123',
      signName: '通知网关',
      templateCode: 'SMS_154950909',
      endpoint: 'https://dysmsapi.aliyuncs.com',
    });
    expect(loadConfig({ ...tencent, SMS_TEMPLATE_PARAM: '1' }).sms).toMatchObject({
      templateParam: '1',
      tencent: { sdkAppId: '1400006666', templateId: '1110011', region: 'ap-guangzhou', endpoint: 'https://sms.tencentcloudapi.com' },
    });
  });

  it('builds the SMS channel SMS_PROVIDER names', async () => {
    for (const [env, provider] of [
      [{}, 'log'],
      [aliyun, 'aliyun'],
      [tencent, 'tencent'],
    ] as const) {
      const channels = createChannels(loadConfig({ ...env, DATA_DIR: os.tmpdir() }), silentLogger());
      expect(channels.SMS.provider).toBe(provider);
      expect(channels.SMS.development).toBe(provider === 'log');
      await closeChannels(channels);
    }
  });
});

describe('starting the gateway with a missing SMS setting', () => {
  it('exits with code 1 and names the setting on stderr', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-gateway-config-'));
    try {
      const { ALIYUN_ACCESS_KEY_ID: _missing, ...settings } = aliyun;
      const result = spawnSync('npx', ['tsx', 'src/main.ts'], {
        cwd: path.resolve(__dirname, '..'),
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          NODE_ENV: 'production',
          PORT: '0',
          DATABASE_URL: `file:${path.join(dir, 'notify.db')}`,
          ...settings,
        },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('ALIYUN_ACCESS_KEY_ID: is required when SMS_PROVIDER=aliyun');
      expect(result.stderr).not.toContain(aliyun.ALIYUN_ACCESS_KEY_SECRET);
      // It stopped before opening the database.
      expect(fs.existsSync(path.join(dir, 'notify.db'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('retention settings', () => {
  it('keeps deliveries 90 days and their content 7 by default', () => {
    expect(loadConfig({}).retention).toEqual({ deliveryDays: 90, contentDays: 7 });
  });

  it('refuses content kept longer than its delivery, reported with the other problems', () => {
    expect(problems({ DELIVERY_RETENTION_DAYS: '30', CONTENT_RETENTION_DAYS: '31', SMS_PROVIDER: 'aliyun', PORT: 'x' })).toEqual(
      expect.arrayContaining([
        'CONTENT_RETENTION_DAYS: must be at most DELIVERY_RETENTION_DAYS (30): content cannot outlive the delivery it belongs to',
        'ALIYUN_ACCESS_KEY_ID: is required when SMS_PROVIDER=aliyun',
        expect.stringMatching(/^PORT: /),
      ]),
    );
    expect(problems({ DELIVERY_RETENTION_DAYS: '30', CONTENT_RETENTION_DAYS: '30' })).toEqual([]);
    expect(problems({ CONTENT_RETENTION_DAYS: '0' })).toEqual([expect.stringMatching(/^CONTENT_RETENTION_DAYS: /)]);
  });
});
