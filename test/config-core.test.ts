import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConsoleDir, describeDatabase, loadConfig } from '../src/config';

const problemsOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('loadConfig accepted the environment');
};

describe('core configuration', () => {
  it('starts from documented defaults with an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 4000,
      host: '0.0.0.0',
      database: { kind: 'sqlite', path: path.resolve('data/notify.db') },
      dataDir: path.resolve('data'),
      opsTokens: [],
      sendWaitMs: 5000,
      ding: { baseUrl: 'https://oapi.dingtalk.com' },
      feishu: { baseUrl: 'https://open.feishu.cn' },
      wecom: { baseUrl: 'https://qyapi.weixin.qq.com' },
      webhook: { allowedHosts: [] },
      robotDigest: true,
      email: { smtpUrl: undefined },
      sms: { provider: 'log' },
    });
  });

  it('reads FEISHU_BASE_URL, WECOM_BASE_URL, WEBHOOK_ALLOWED_HOSTS and ROBOT_DIGEST', () => {
    expect(
      loadConfig({
        FEISHU_BASE_URL: 'https://open.larksuite.com',
        WECOM_BASE_URL: 'http://127.0.0.1:4020',
        WEBHOOK_ALLOWED_HOSTS: ' Hooks.Internal , 127.0.0.1,::1,, ',
        ROBOT_DIGEST: 'off',
      }),
    ).toMatchObject({
      feishu: { baseUrl: 'https://open.larksuite.com' },
      wecom: { baseUrl: 'http://127.0.0.1:4020' },
      webhook: { allowedHosts: ['hooks.internal', '127.0.0.1', '::1'] },
      robotDigest: false,
    });
    expect(loadConfig({ ROBOT_DIGEST: 'on', WEBHOOK_ALLOWED_HOSTS: '' })).toMatchObject({ robotDigest: true, webhook: { allowedHosts: [] } });
  });

  it('reads PORT, HOST, DATABASE_URL, OPS_TOKENS, SEND_WAIT_MS and DINGTALK_BASE_URL', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '127.0.0.1',
      DATABASE_URL: 'file:/srv/notify/gateway.db',
      OPS_TOKENS: ' alpha, beta ,,gamma ',
      SEND_WAIT_MS: '250',
      DINGTALK_BASE_URL: 'http://127.0.0.1:9000',
    });
    expect(config).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      database: { kind: 'sqlite', path: '/srv/notify/gateway.db' },
      dataDir: '/srv/notify',
      opsTokens: ['alpha', 'beta', 'gamma'],
      sendWaitMs: 250,
      ding: { baseUrl: 'http://127.0.0.1:9000' },
    });
  });

  it.each([
    ['postgres://notify:s3cret@db.internal:5432/notify', 'postgres://db.internal:5432/notify'],
    ['postgresql://db.internal/notify?sslmode=require', 'postgres://db.internal/notify'],
  ])('selects PostgreSQL for %s, with a pool of 10 unless DATABASE_POOL_SIZE says otherwise', (url, described) => {
    const key = 'ab'.repeat(32);
    const config = loadConfig({ DATABASE_URL: url, NOTIFY_SECRET_KEY: key });
    expect(config.database).toEqual({ kind: 'postgres', url, poolSize: 10 });
    expect(config.dataDir).toBe(path.resolve('data'));
    expect(describeDatabase(config.database)).toBe(described);
    expect(loadConfig({ DATABASE_URL: url, NOTIFY_SECRET_KEY: key, DATABASE_POOL_SIZE: '25' }).database).toMatchObject({ poolSize: 25 });
  });

  it('never echoes a PostgreSQL password in its problems', () => {
    const problems = problemsOf({ DATABASE_URL: 'postgres://notify:s3cret@db.internal/notify' });
    expect(problems.join('\n')).not.toContain('s3cret');
    expect(problems).toEqual([expect.stringMatching(/^NOTIFY_SECRET_KEY: is required with a PostgreSQL DATABASE_URL/)]);
  });

  it("serves the console from the package's dist/console unless CONSOLE_DIR names another folder (relative to the working directory)", () => {
    const packageDist = fileURLToPath(new URL('../dist/console', import.meta.url));
    expect(defaultConsoleDir).toBe(packageDist);
    expect(loadConfig({}).consoleDir).toBe(packageDist);
    expect(loadConfig({ CONSOLE_DIR: '' }).consoleDir).toBe(packageDist);
    expect(loadConfig({ CONSOLE_DIR: '/srv/console' }).consoleDir).toBe('/srv/console');
    expect(loadConfig({ CONSOLE_DIR: 'build/console' }).consoleDir).toBe(path.resolve('build/console'));
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ PORT: '', DINGTALK_BASE_URL: '', OPS_TOKENS: '' })).toMatchObject({
      port: 4000,
      ding: { baseUrl: 'https://oapi.dingtalk.com' },
      opsTokens: [],
    });
  });

  it('reports a bad PORT and a bad DINGTALK_BASE_URL together', () => {
    const problems = problemsOf({ PORT: 'eighty', DINGTALK_BASE_URL: 'ftp://oapi.dingtalk.com' });
    expect(problems).toHaveLength(2);
    expect(problems.find((problem) => problem.startsWith('PORT: '))).toBeDefined();
    expect(problems.find((problem) => problem.startsWith('DINGTALK_BASE_URL: '))).toMatch(/http\(s\) URL/);
  });

  it.each([
    ['PORT above 65535', { PORT: '70000' }, 'PORT'],
    ['a negative PORT', { PORT: '-1' }, 'PORT'],
    ['a DINGTALK_BASE_URL that is not a URL', { DINGTALK_BASE_URL: 'oapi.dingtalk.com' }, 'DINGTALK_BASE_URL'],
    ['a DATABASE_URL that is neither file: nor postgres://', { DATABASE_URL: 'mysql://db/notify' }, 'DATABASE_URL'],
    ['a postgres:// DATABASE_URL without a host', { DATABASE_URL: 'postgres:///notify', NOTIFY_SECRET_KEY: 'a'.repeat(64) }, 'DATABASE_URL'],
    ['a PostgreSQL DATABASE_URL without NOTIFY_SECRET_KEY', { DATABASE_URL: 'postgres://db/notify' }, 'NOTIFY_SECRET_KEY'],
    ['a DATABASE_POOL_SIZE of 0', { DATABASE_POOL_SIZE: '0' }, 'DATABASE_POOL_SIZE'],
    ['a negative SEND_WAIT_MS', { SEND_WAIT_MS: '-5' }, 'SEND_WAIT_MS'],
    ['a fractional SEND_WAIT_MS', { SEND_WAIT_MS: '1.5' }, 'SEND_WAIT_MS'],
    ['a FEISHU_BASE_URL that is not a URL', { FEISHU_BASE_URL: 'open.feishu.cn' }, 'FEISHU_BASE_URL'],
    ['a WECOM_BASE_URL that is not http(s)', { WECOM_BASE_URL: 'ftp://qyapi.weixin.qq.com' }, 'WECOM_BASE_URL'],
    ['a WEBHOOK_ALLOWED_HOSTS entry with a scheme', { WEBHOOK_ALLOWED_HOSTS: 'ok.internal,http://hooks.internal' }, 'WEBHOOK_ALLOWED_HOSTS'],
    ['a WEBHOOK_ALLOWED_HOSTS entry with a port', { WEBHOOK_ALLOWED_HOSTS: 'hooks.internal:8080' }, 'WEBHOOK_ALLOWED_HOSTS'],
    ['a ROBOT_DIGEST other than on or off', { ROBOT_DIGEST: 'true' }, 'ROBOT_DIGEST'],
  ])('refuses %s', (_label, env, key) => {
    const problems = problemsOf(env);
    expect(problems.length).toBeGreaterThan(0);
    for (const problem of problems) expect(problem.startsWith(`${key}: `)).toBe(true);
  });

  it('lists every problem in the message', () => {
    try {
      loadConfig({ PORT: 'x', DATABASE_URL: 'mysql://x', DINGTALK_BASE_URL: 'nope' });
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toMatch(/^Invalid configuration:\n/);
      for (const key of ['PORT', 'DATABASE_URL', 'DINGTALK_BASE_URL']) expect((error as Error).message).toContain(`  - ${key}: `);
    }
  });
});
