import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliveryFields, startGateway, type TestGateway } from '../support/gateway';

describe('sendEmail through the development outbox', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway();
  });
  afterAll(() => gateway.close());

  it('records the delivery, writes one .eml and answers SENT', async () => {
    const { status, body } = await gateway.graphql(
      `mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { ${deliveryFields} } } }`,
      { input: { to: ['ops@example.com'], subject: '告警', content: '磁盘已满' } },
    );
    expect(status).toBe(200);
    expect(body.data.sendEmail).toMatchObject({ __typename: 'Delivery', status: 'SENT', attempts: 1, provider: 'file-outbox' });
    const row = await gateway.store.getDelivery(body.data.sendEmail.id);
    expect(row?.status).toBe('SENT');
  });
});
