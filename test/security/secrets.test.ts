import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSecretKey, SecretBox } from '../../src/secrets';
import { startAliyunSmsEmulator, type AliyunSmsEmulator } from '../peers/aliyun-sms-emulator';
import { startDingTalkEmulator, type DingTalkEmulator } from '../peers/ding-talk-emulator';
import { databaseContents, describeOnStores, sealedSecretsOf, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryFields, eventually, startGateway, testSecretKey, testToken, type TestGateway } from '../support/gateway';

// Distinctive values, so that finding one anywhere is never a coincidence.
const robot = { accessToken: crypto.randomBytes(32).toString('hex'), secret: `SEC${crypto.randomBytes(32).toString('hex')}` };
const restRobot = { accessToken: crypto.randomBytes(32).toString('hex'), secret: `SEC${crypto.randomBytes(32).toString('hex')}` };
const smsCode = 'QZ7KX4WV';
const smsParam = 'PJ3RM8TN';
const restSmsCode = 'HB6YD2CF';
const secrets = [robot.accessToken, robot.secret, restRobot.accessToken, restRobot.secret, smsCode, smsParam, restSmsCode];
const mobile = '13812345678';
const restMobile = '13987654321';
const unmasked = ['13812345678', '13987654321'];

const dingMutation = `mutation($input: SendDingInput!) { sendDing(input: $input) { __typename ... on Delivery { ${deliveryFields} } } }`;
const smsMutation = `mutation($input: SendSmsInput!) { sendSms(input: $input) { __typename ... on Delivery { ${deliveryFields} } } }`;

/**
 * What the database holds, as bytes (what a stolen disk or backup would show): the SQLite file and its write-ahead log;
 * for PostgreSQL, every row of every table (support/db.ts).
 */
const databaseBytes = (gateway: AnyGateway, options?: { checkpoint?: boolean }) => databaseContents(gateway, options);

const sealedColumn = (gateway: AnyGateway, id: string) => sealedSecretsOf(gateway, id);

/** The key secrets are sealed with: the data folder's secret.key (SQLite), or NOTIFY_SECRET_KEY (PostgreSQL replicas). */
const secretKeyOf = (gateway: AnyGateway) =>
  gateway.store.kind === 'postgres'
    ? Buffer.from(testSecretKey, 'hex')
    : Buffer.from(fs.readFileSync(path.join(gateway.config.dataDir, 'secret.key'), 'utf8'), 'hex');

describeOnStores('secrets at rest, in answers and in logs', (kind) => {
  let gateway: AnyGateway;
  let ding: DingTalkEmulator;
  let aliyun: AliyunSmsEmulator;
  /** Every answer the gateway gave in this suite, as text. */
  const answers: string[] = [];
  const ids: string[] = [];
  const sealedForms: string[] = [];

  const graphql = async (query: string, variables?: Record<string, unknown>) => {
    const result = await gateway.graphql(query, variables);
    answers.push(JSON.stringify(result.body));
    return result;
  };
  const rest = async (pathAndQuery: string) => {
    const response = await gateway.fetch(pathAndQuery, { headers: { 'OPS-Token': testToken } });
    const text = await response.text();
    answers.push(text);
    return JSON.parse(text) as { code: number; data: string; deliveryId?: string };
  };

  beforeAll(async () => {
    ding = await startDingTalkEmulator({ robots: { [robot.accessToken]: robot.secret, [restRobot.accessToken]: restRobot.secret } });
    aliyun = await startAliyunSmsEmulator({ accessKeyId: 'ak-test', accessKeySecret: 'ak-secret', limits: false });
    gateway = await startGatewayOn(kind, {
      noDispatch: true,
      env: {
        SEND_WAIT_MS: '0',
        DINGTALK_BASE_URL: ding.url,
        SMS_PROVIDER: 'aliyun',
        ALIYUN_ACCESS_KEY_ID: 'ak-test',
        ALIYUN_ACCESS_KEY_SECRET: 'ak-secret',
        ALIYUN_SMS_SIGN_NAME: '通知网关',
        ALIYUN_SMS_TEMPLATE_CODE: 'SMS_154950909',
        ALIYUN_SMS_ENDPOINT: aliyun.url,
      },
    });
  });
  afterAll(async () => {
    await gateway.close();
    await ding.close();
    await aliyun.close();
  });

  it('keeps DingTalk credentials and SMS codes only sealed (AES-256-GCM) while deliveries are pending', async () => {
    const sentDing = await graphql(dingMutation, { input: { ...robot, content: 'disk full on db-1' } });
    const sentSms = await graphql(smsMutation, { input: { mobile, content: smsCode, params: { extra: smsParam } } });
    const legacyDing = await rest(
      `/api/third/ding/sendMsg?accessToken=${restRobot.accessToken}&secret=${restRobot.secret}&content=${encodeURIComponent('from REST')}`,
    );
    const legacySms = await rest(`/api/third/sms/sendMsg?mobile=${restMobile}&content=${restSmsCode}`);
    expect(legacyDing.code).toBe(1000);
    expect(legacySms.code).toBe(1000);
    ids.push(sentDing.body.data.sendDing.id, sentSms.body.data.sendSms.id, legacyDing.deliveryId!, legacySms.deliveryId!);
    expect(sentDing.body.data.sendDing.status).toBe('QUEUED');

    const box = new SecretBox(secretKeyOf(gateway));
    const bytes = await databaseBytes(gateway);
    for (const id of ids) {
      const sealed = await sealedColumn(gateway, id);
      expect(sealed).toMatch(/^v1\.[A-Za-z0-9+/=]+$/);
      sealedForms.push(sealed!);
      // The sealed form is what the disk holds.
      expect(bytes.includes(Buffer.from(sealed!))).toBe(true);
    }
    expect(box.open((await sealedColumn(gateway, ids[0]))!)).toEqual(robot);
    expect(box.open((await sealedColumn(gateway, ids[1]))!)).toEqual({ content: smsCode, params: { extra: smsParam } });
    expect(box.open((await sealedColumn(gateway, ids[3]))!)).toMatchObject({ content: restSmsCode });
    for (const secret of secrets) expect(bytes.includes(Buffer.from(secret)), secret).toBe(false);

    // GCM: a changed byte or another key opens nothing.
    const sealed = (await sealedColumn(gateway, ids[0]))!;
    const raw = Buffer.from(sealed.slice(3), 'base64');
    raw[raw.length - 1] ^= 1;
    expect(() => box.open(`v1.${raw.toString('base64')}`)).toThrow();
    expect(() => new SecretBox(crypto.randomBytes(32)).open(sealed)).toThrow();
  });

  it('erases them once the deliveries are final, and they appear in no answer, no log line and no database byte', async () => {
    gateway.app.start();
    for (const id of ids) {
      await eventually(async () => (await gateway.store.getDelivery(id))?.status === 'SENT');
      expect(await sealedColumn(gateway, id)).toBeNull();
    }
    // The providers did get them: the secrets were used, then dropped.
    expect(ding.messages.map((message) => message.accessToken).sort()).toEqual([robot.accessToken, restRobot.accessToken].sort());
    expect(aliyun.messages.map((message) => message.templateParam?.code).sort()).toEqual([restSmsCode, smsCode].sort());

    for (const id of ids) {
      await graphql(`query($id: ID!) { delivery(id: $id) { ${deliveryFields} } node(id: $id) { id } }`, { id });
    }
    await graphql(`{ deliveries(first: 100) { edges { node { ${deliveryFields} } } } }`);
    await rest('/api/third/ding/sendMsg?content=x');

    const everything = [answers.join('\n'), JSON.stringify(gateway.logs)];
    const bytes = await databaseBytes(gateway, { checkpoint: true });
    for (const id of ids) expect(bytes.includes(Buffer.from(id)), id).toBe(true);
    for (const secret of secrets) {
      for (const text of everything) expect(text.includes(secret), secret).toBe(false);
      expect(bytes.includes(Buffer.from(secret)), secret).toBe(false);
    }
    // Not even the sealed form lingers in the file once checkpointed (secure_delete). PostgreSQL: in no live row (its
    // files keep dead row versions until VACUUM; what they hold is not readable from here).
    for (const sealed of sealedForms) expect(bytes.includes(Buffer.from(sealed.slice(3, 40)))).toBe(false);
  });

  it('masks mobile numbers in every log line', () => {
    const logs = JSON.stringify(gateway.logs);
    expect(gateway.logs.length).toBeGreaterThan(5);
    for (const number of unmasked) {
      expect(logs).not.toContain(number);
      expect(logs).not.toContain(number.slice(1));
    }
  });
});

describeOnStores('erasure and retry stay coherent', (kind) => {
  let gateway: AnyGateway;
  let ding: DingTalkEmulator;
  beforeAll(async () => {
    ding = await startDingTalkEmulator({ robots: {} });
    gateway = await startGatewayOn(kind, { env: { DINGTALK_BASE_URL: ding.url, SEND_WAIT_MS: '3000' } });
  });
  afterAll(async () => {
    await gateway.close();
    await ding.close();
  });

  it('refuses to retry a FAILED DingTalk delivery whose credentials were erased, with INVALID_STATE', async () => {
    // An unknown robot: DingTalk answers 300001, a permanent failure.
    const { body } = await gateway.graphql(dingMutation, {
      input: { accessToken: crypto.randomBytes(32).toString('hex'), secret: 'SECunknown', content: 'x' },
    });
    const failed = body.data.sendDing;
    expect(failed).toMatchObject({ status: 'FAILED', lastError: { code: '300001' } });
    expect(await sealedColumn(gateway, failed.id)).toBeNull();
    const retried = await gateway.graphql(
      'mutation($id: ID!) { retryDelivery(id: $id) { __typename ... on Error { code message } } }',
      { id: failed.id },
    );
    expect(retried.body.data.retryDelivery).toEqual({
      __typename: 'InvalidStateError',
      code: 'INVALID_STATE',
      message: 'Its credentials or code were erased when it failed; send a new message instead',
    });
    expect((await gateway.store.getDelivery(failed.id))?.status).toBe('FAILED');
  });

  it('erases the sealed secrets of a cancelled delivery at once', async () => {
    const cancelling = await startGatewayOn(kind, { noDispatch: true, env: { SEND_WAIT_MS: '0' } });
    try {
      const { body } = await cancelling.graphql(dingMutation, { input: { ...robot, content: 'x' } });
      const id = body.data.sendDing.id;
      expect(await sealedColumn(cancelling, id)).toMatch(/^v1\./);
      const cancelled = await cancelling.graphql('mutation($id: ID!) { cancelDelivery(id: $id) { __typename ... on Delivery { status } } }', {
        id,
      });
      expect(cancelled.body.data.cancelDelivery).toEqual({ __typename: 'Delivery', status: 'CANCELLED' });
      expect(await sealedColumn(cancelling, id)).toBeNull();
    } finally {
      await cancelling.close();
    }
  });
});

describe('the secret key', () => {
  it('is generated once into the data folder with mode 0600, and reused', () => {
    const dir = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? '/tmp'), 'notify-key-'));
    try {
      const key = loadSecretKey(undefined, dir);
      expect(key).toHaveLength(32);
      const file = path.join(dir, 'secret.key');
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(loadSecretKey(undefined, dir).equals(key)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('comes from NOTIFY_SECRET_KEY when set (hex or base64), and a wrong one stops the start', async () => {
    const key = crypto.randomBytes(32);
    const dir = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? '/tmp'), 'notify-key-'));
    try {
      expect(loadSecretKey(key.toString('hex'), dir).equals(key)).toBe(true);
      expect(loadSecretKey(key.toString('base64'), dir).equals(key)).toBe(true);
      expect(fs.existsSync(path.join(dir, 'secret.key'))).toBe(false);
      expect(() => loadSecretKey('abcd', dir)).toThrow(/32 bytes/);
      fs.writeFileSync(path.join(dir, 'secret.key'), 'not a key');
      expect(() => loadSecretKey(undefined, dir)).toThrow(/64 hex characters/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }

    const gateway = await startGateway({ noDispatch: true, env: { NOTIFY_SECRET_KEY: key.toString('hex'), SEND_WAIT_MS: '0' } });
    try {
      const { body } = await gateway.graphql(dingMutation, { input: { ...robot, content: 'x' } });
      expect(new SecretBox(key).open((await sealedColumn(gateway, body.data.sendDing.id))!)).toEqual(robot);
      expect(fs.existsSync(path.join(gateway.config.dataDir, 'secret.key'))).toBe(false);
    } finally {
      await gateway.close();
    }
  });
});

