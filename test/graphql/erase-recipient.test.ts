import { execFile } from 'node:child_process';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { databaseContents, describeOnStores, insertScopedToken, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryWhen, testSecretKey, type TestGateway } from '../support/gateway';
import { deliveryRow } from '../support/stores';

const root = new URL('../..', import.meta.url).pathname;

const sendEmail = `mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { id status } ... on Error { code message } } }`;
const sendSms = `mutation($input: SendSmsInput!) { sendSms(input: $input) { __typename ... on Delivery { id status } ... on Error { code message } } }`;
const erase = `mutation($recipient: String!) { eraseRecipient(recipient: $recipient) {
  __typename ... on RecipientErasure { erased } ... on Error { code message } } }`;
const everything = `{ deliveries(first: 100) { edges { node {
  id status recipient idempotencyKey redactedAt lastError { code message } attemptLog { providerCode providerMessage } } } } }`;

function eraseCli(gateway: AnyGateway, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const database =
    gateway.store.kind === 'postgres'
      ? { DATABASE_URL: gateway.database!.url, NOTIFY_SECRET_KEY: testSecretKey }
      : { DATABASE_URL: `file:${gateway.databasePath}` };
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/erase.ts', ...args], { cwd: root, env: { ...process.env, ...database } }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describeOnStores('eraseRecipient and npm run erase', (kind) => {
  let gateway: AnyGateway;
  beforeEach(async () => {
    gateway = await startGatewayOn(kind);
  });
  afterEach(async () => {
    await gateway.close();
  });

  const send = async (mutation: string, input: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const { body } = await gateway.graphql(mutation, { input }, { headers });
    const delivery = Object.values(body.data)[0] as { id: string; __typename: string };
    expect(delivery.__typename).toBe('Delivery');
    return deliveryWhen(gateway as unknown as TestGateway, delivery.id, (current) => current.status === 'SENT');
  };

  it('leaves no trace of the address in any row, attempt, log line or answer, and leaves the other recipients alone', async () => {
    const gone = await Promise.all([
      send(sendEmail, { to: ['Gone@Example.com'], subject: 'Your invoice', content: 'Dear Gone' }, { 'Idempotency-Key': 'invoice-gone@example.com' }),
      send(sendEmail, { to: ['keep@example.com', 'gone@example.com'], content: 'to both' }),
      send(sendEmail, { to: ['other@example.com'], cc: ['GONE@example.com'], content: 'copied' }),
    ]);
    const kept = await send(sendEmail, { to: ['keep@example.com'], subject: 'Kept', content: 'for keep only' });
    // A bounce that echoes the address, as SMTP servers do.
    const bounced = deliveryRow({ recipient: 'gone@example.com', status: 'FAILED', lastErrorCode: '550', lastErrorMessage: '550 5.1.1 <gone@example.com>: no such user' });
    await gateway.store.insertDelivery(bounced);
    await gateway.store.finishAttempt(bounced.id, { number: 1, startedAt: Date.now(), durationMs: 9, outcome: 'PERMANENT', providerCode: '550', providerMessage: '550 5.1.1 <gone@example.com>: no such user' }, {});

    const scoped = await insertScopedToken(gateway, 'mailer', { channels: ['EMAIL'], read: 'all' });
    const refused = await gateway.graphql(erase, { recipient: 'gone@example.com' }, { token: scoped });
    expect(refused.body.data.eraseRecipient).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN' });
    const invalid = await gateway.graphql(erase, { recipient: 'not an address' });
    expect(invalid.body.data.eraseRecipient).toMatchObject({ __typename: 'ValidationError', code: 'INVALID_ARGUMENT' });

    const { body } = await gateway.graphql(erase, { recipient: ' GONE@example.com ' });
    expect(body.data.eraseRecipient).toEqual({ __typename: 'RecipientErasure', erased: 4 });

    const answer = await gateway.graphql(everything);
    const nodes = new Map<string, any>(answer.body.data.deliveries.edges.map(({ node }: any) => [node.id, node]));
    const contents = (await databaseContents(gateway, { checkpoint: true })).toString('latin1').toLowerCase();
    expect(contents).not.toContain('gone@example.com');
    expect(JSON.stringify(answer.body).toLowerCase()).not.toContain('gone@');
    expect(JSON.stringify(gateway.logs).toLowerCase()).not.toContain('gone@');
    expect(gateway.logs.filter((line) => line.msg === 'recipient erased')).toEqual([
      expect.objectContaining({ component: 'audit', erased: 4, by: expect.any(String) }),
    ]);

    const marker = nodes.get(gone[0].id).recipient as string;
    expect(marker).toMatch(/^erased:[0-9a-f]{16}$/);
    expect(nodes.get(gone[0].id)).toMatchObject({ idempotencyKey: null, redactedAt: expect.any(String) });
    expect(nodes.get(gone[1].id).recipient).toBe(`keep@example.com, ${marker}`);
    expect(nodes.get(gone[2].id)).toMatchObject({ recipient: 'other@example.com', redactedAt: expect.any(String) });
    expect(nodes.get(bounced.id)).toMatchObject({
      recipient: marker,
      lastError: { code: '550', message: `550 5.1.1 <${marker}>: no such user` },
      attemptLog: [{ providerCode: '550', providerMessage: `550 5.1.1 <${marker}>: no such user` }],
    });
    expect(nodes.get(kept.id)).toMatchObject({ recipient: 'keep@example.com', redactedAt: null });
    expect((await gateway.store.getDelivery(kept.id))!.payload).toContain('for keep only');
  });

  it('npm run erase -- --recipient takes a mobile number as a send writes it, and prints only the count', async () => {
    const erased = await send(sendSms, { mobile: '+86 138 0013 8000', content: '1234' });
    const kept = await send(sendSms, { mobile: '13900139000', content: '5678' });
    const result = await eraseCli(gateway, '--recipient', '138 0013 8000');
    expect(result).toMatchObject({ code: 0, stdout: 'Erased the recipient from 1 delivery.\n' });
    expect(result.stderr).toContain('"component":"audit"');
    expect(result.stderr).not.toMatch(/13800138000|0013/);
    expect((await gateway.store.getDelivery(erased.id))!.recipient).toMatch(/^erased:/);
    expect((await gateway.store.getDelivery(kept.id))!.recipient).toBe('+8613900139000');
    expect(await eraseCli(gateway, '--recipient', 'nobody')).toMatchObject({ code: 2, stderr: expect.stringContaining('--recipient must be') });
  });
});
