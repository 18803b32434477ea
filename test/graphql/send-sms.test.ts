import { afterAll, beforeAll, expect, it } from 'vitest';
import { countDeliveries, describeOnStores, mutationResult, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryFields } from '../support/gateway';

const sendSms = `mutation($input: SendSmsInput!) {
  sendSms(input: $input) {
    __typename
    ... on Delivery { ${deliveryFields} }
    ... on Error { message }
    ... on ValidationError { fieldErrors { path message } }
  }
}`;

describeOnStores('sendSms through the development log provider', (kind) => {
  let gateway: AnyGateway;
  const call = (input: Record<string, unknown>) => mutationResult(gateway, sendSms, input);

  beforeAll(async () => {
    gateway = await startGatewayOn(kind);
  });
  afterAll(() => gateway.close());

  it('answers SENT, and logs the message with a masked mobile and without its content', async () => {
    const delivery = await call({ mobile: '138 0013 8000', content: '739204' });
    expect(delivery).toMatchObject({
      __typename: 'Delivery',
      channel: 'SMS',
      status: 'SENT',
      attempts: 1,
      provider: 'log',
      recipient: '+8613800138000',
      lastError: null,
    });
    expect(delivery.providerMessageId).toMatch(/^log-/);

    const line = gateway.logs.find((entry) => entry.deliveryId === delivery.id && entry.provider === 'log' && entry.mobile);
    expect(line).toMatchObject({ mobile: '+86138****8000', providerMessageId: delivery.providerMessageId });
    expect(String(line!.msg)).toMatch(/development/i);

    const logs = JSON.stringify(gateway.logs);
    expect(logs).not.toContain('739204');
    expect(logs).not.toContain('13800138000');
    expect(logs).not.toContain('0013');

    const row = await gateway.store.getDelivery(delivery.id);
    expect(row).toMatchObject({ status: 'SENT', sealedSecrets: null });
    expect(row!.payload).not.toContain('739204');
  });

  it('accepts an E.164 number from outside mainland China', async () => {
    const delivery = await call({ mobile: '+44 7911 123456', content: '1234' });
    expect(delivery).toMatchObject({ status: 'SENT', recipient: '+447911123456' });
  });

  it.each([
    ['a mobile that is not a number', { mobile: 'call me', content: '1' }, [
      { path: 'mobile', message: 'must be a valid mobile number (E.164, or 11 digits for mainland China)' },
    ]],
    ['a mainland number one digit short', { mobile: '1380013800', content: '1' }, [
      { path: 'mobile', message: 'must be a valid mobile number (E.164, or 11 digits for mainland China)' },
    ]],
    ['a Beijing landline', { mobile: '010 1234 5678', content: '1' }, [
      { path: 'mobile', message: 'must be a valid mobile number (E.164, or 11 digits for mainland China)' },
    ]],
    ['an empty content', { mobile: '13800138000', content: '' }, [{ path: 'content', message: 'must not be empty' }]],
    ['both at once', { mobile: '', content: 'two\nlines' }, [
      { path: 'mobile', message: 'must be a valid mobile number (E.164, or 11 digits for mainland China)' },
      { path: 'content', message: 'must be a single line' },
    ]],
  ])('refuses %s with a ValidationError per field and records nothing', async (_label, input, fieldErrors) => {
    const before = await countDeliveries(gateway);
    const result = await call(input);
    expect(result.__typename).toBe('ValidationError');
    expect(result.fieldErrors).toEqual(fieldErrors);
    expect(await countDeliveries(gateway)).toBe(before);
  });
});
