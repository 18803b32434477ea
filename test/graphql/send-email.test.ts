import fs from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { countDeliveries, describeOnStores, mutationResult, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryFields } from '../support/gateway';

const sendEmail = `mutation($input: SendEmailInput!) {
  sendEmail(input: $input) {
    __typename
    ... on Delivery { ${deliveryFields} }
    ... on Error { message }
    ... on ValidationError { fieldErrors { path message } }
  }
}`;

describeOnStores('sendEmail through the development file outbox', (kind) => {
  let gateway: AnyGateway;
  const outbox = () => path.join(gateway.config.dataDir, 'outbox');
  const call = (input: Record<string, unknown>) => mutationResult(gateway, sendEmail, input);

  beforeAll(async () => {
    gateway = await startGatewayOn(kind);
  });
  afterAll(() => gateway.close());

  it('records the delivery, writes one .eml with the subject and recipients, and answers SENT', async () => {
    const delivery = await call({
      to: ['Ops@Example.com', 'dev@example.com'],
      cc: ['lead@example.com'],
      subject: '告警: 磁盘已满',
      content: '/var 已用 95%',
      html: '<p>/var 已用 <b>95%</b></p>',
    });
    expect(delivery).toMatchObject({
      __typename: 'Delivery',
      channel: 'EMAIL',
      status: 'SENT',
      attempts: 1,
      provider: 'file-outbox',
      recipient: 'ops@example.com, dev@example.com',
      lastError: null,
    });
    expect(delivery.providerMessageId).toMatch(/@/);
    expect(new Date(delivery.sentAt).getTime()).toBeGreaterThanOrEqual(new Date(delivery.createdAt).getTime());

    const file = path.join(outbox(), `${delivery.id}.eml`);
    expect(fs.existsSync(file)).toBe(true);
    const mail = await simpleParser(fs.readFileSync(file));
    expect(mail.subject).toBe('告警: 磁盘已满');
    expect(mail.text?.trim()).toBe('/var 已用 95%');
    expect(mail.html).toContain('<b>95%</b>');
    const addresses = (field: typeof mail.to) =>
      [field].flat().flatMap((entry) => entry?.value.map((address) => address.address?.toLowerCase()) ?? []);
    expect(addresses(mail.to)).toEqual(['ops@example.com', 'dev@example.com']);
    expect(addresses(mail.cc)).toEqual(['lead@example.com']);
    expect(mail.messageId).toBe(delivery.providerMessageId);

    const row = await gateway.store.getDelivery(delivery.id);
    expect(row).toMatchObject({ status: 'SENT', attempts: 1 });
  });

  it('writes one file per message', async () => {
    const before = fs.readdirSync(outbox()).filter((name) => name.endsWith('.eml')).length;
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await call({ to: ['a@example.com'], subject: `n${i}`, content: 'x' })).id);
    const files = fs.readdirSync(outbox()).filter((name) => name.endsWith('.eml'));
    expect(files).toHaveLength(before + 3);
    for (const id of ids) expect(files).toContain(`${id}.eml`);
  });

  it.each([
    ['no recipient', { to: [], content: 'x' }, [{ path: 'to', message: 'must list at least one address' }]],
    ['a malformed address in to and cc', { to: ['ok@example.com', 'not-an-address'], cc: ['@x'], content: 'x' }, [
      { path: 'to.1', message: 'must be an email address' },
      { path: 'cc.0', message: 'must be an email address' },
    ]],
    ['an empty content', { to: ['a@example.com'], content: '' }, [{ path: 'content', message: 'must not be empty' }]],
    ['a subject with a line break (header injection)', { to: ['a@example.com'], subject: 'hi\r\nBcc: x@evil.test', content: 'x' }, [
      { path: 'subject', message: 'must be a single line' },
    ]],
    ['an address with a line break', { to: ['a@example.com\nBcc: x@evil.test'], content: 'x' }, [
      { path: 'to.0', message: 'must not contain line breaks' },
    ]],
    ['several problems at once', { to: ['bad'], subject: 'a\nb', content: ' ' }, [
      { path: 'to.0', message: 'must be an email address' },
      { path: 'subject', message: 'must be a single line' },
      { path: 'content', message: 'must not be empty' },
    ]],
  ])('refuses %s with a ValidationError per field and records nothing', async (_label, input, fieldErrors) => {
    const before = await countDeliveries(gateway);
    const files = fs.existsSync(outbox()) ? fs.readdirSync(outbox()).length : 0;
    const result = await call(input);
    expect(result.__typename).toBe('ValidationError');
    expect(result.fieldErrors).toEqual(fieldErrors);
    expect(result.message).toContain(fieldErrors[0].path);
    expect(await countDeliveries(gateway)).toBe(before);
    expect(fs.existsSync(outbox()) ? fs.readdirSync(outbox()).length : 0).toBe(files);
  });

  it('refuses an invalid idempotencyKey as a field error and records nothing', async () => {
    const before = await countDeliveries(gateway);
    const result = await call({ to: ['a@example.com'], content: 'x', idempotencyKey: 'a\nb' });
    expect(result).toMatchObject({
      __typename: 'ValidationError',
      fieldErrors: [{ path: 'idempotencyKey', message: 'must be a single line' }],
    });
    expect(await countDeliveries(gateway)).toBe(before);
  });
});
