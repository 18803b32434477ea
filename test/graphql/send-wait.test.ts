import { afterEach, expect, it } from 'vitest';
import { ChannelError, type Channel, type EmailMessage, type SendResult } from '../../src/channels/channel';
import { describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryFields, eventually } from '../support/gateway';

const sendEmail = `mutation($input: SendEmailInput!) {
  sendEmail(input: $input) { __typename ... on Delivery { ${deliveryFields} } }
}`;
const getDelivery = `query($id: ID!) { delivery(id: $id) { ${deliveryFields} } }`;

/** An email channel whose every attempt waits for the test to settle it. */
function controlledEmail() {
  const pending: { message: EmailMessage; settle: (outcome: SendResult | ChannelError) => void }[] = [];
  const channel: Channel<'EMAIL'> = {
    channel: 'EMAIL',
    provider: 'stub',
    development: false,
    send: (message) =>
      new Promise<SendResult>((resolve, reject) => {
        pending.push({ message, settle: (outcome) => (outcome instanceof ChannelError ? reject(outcome) : resolve(outcome)) });
      }),
  };
  return { channel, pending };
}

describeOnStores('how long a send mutation waits', (kind) => {
  let gateway: AnyGateway | undefined;
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  const statusOf = async (id: string) => (await gateway!.graphql(getDelivery, { id })).body.data.delivery;

  it('answers QUEUED at once with wait: false, and the delivery is then sent', async () => {
    const stub = controlledEmail();
    gateway = await startGatewayOn(kind, { channels: { EMAIL: stub.channel } });
    const { body } = await gateway.graphql(sendEmail, { input: { to: ['a@example.com'], content: 'x', wait: false } });
    expect(body.data.sendEmail).toMatchObject({ __typename: 'Delivery', status: 'QUEUED', attempts: 0, sentAt: null });
    const { id } = body.data.sendEmail;

    await eventually(() => stub.pending.length === 1);
    stub.pending[0].settle({ providerMessageId: 'stub-1' });
    const sent = await eventually(async () => {
      const delivery = await statusOf(id);
      return delivery.status === 'SENT' && delivery;
    });
    expect(sent).toMatchObject({ attempts: 1, providerMessageId: 'stub-1' });
  });

  it('waits for the first attempt by default and answers the delivery as it stands then', async () => {
    const stub = controlledEmail();
    gateway = await startGatewayOn(kind, { channels: { EMAIL: stub.channel } });
    const answer = gateway.graphql(sendEmail, { input: { to: ['a@example.com'], content: 'x' } });
    await eventually(() => stub.pending.length === 1);
    stub.pending[0].settle(new ChannelError('retryable', '421', 'mailbox busy'));

    const { body } = await answer;
    expect(body.data.sendEmail).toMatchObject({
      status: 'RETRYING',
      attempts: 1,
      lastError: { code: '421', message: 'mailbox busy' },
      attemptLog: [{ number: 1, outcome: 'RETRYABLE' }],
    });
    expect(body.data.sendEmail.nextAttemptAt).not.toBeNull();

    // The retry goes on after the answer.
    await eventually(() => stub.pending.length === 2);
    stub.pending[1].settle({});
    await eventually(async () => (await statusOf(body.data.sendEmail.id)).status === 'SENT');
  });

  it('stops waiting after SEND_WAIT_MS and answers SENDING while the attempt is under way', async () => {
    const stub = controlledEmail();
    gateway = await startGatewayOn(kind, { env: { SEND_WAIT_MS: '200' }, channels: { EMAIL: stub.channel } });
    const { body } = await gateway.graphql(sendEmail, { input: { to: ['a@example.com'], content: 'x' } });
    expect(stub.pending).toHaveLength(1);
    expect(body.data.sendEmail).toMatchObject({ status: 'SENDING', attempts: 0, sentAt: null });

    stub.pending[0].settle({});
    await eventually(async () => (await statusOf(body.data.sendEmail.id)).status === 'SENT');
  });

  it('does not wait at all with SEND_WAIT_MS=0', async () => {
    const stub = controlledEmail();
    gateway = await startGatewayOn(kind, { env: { SEND_WAIT_MS: '0' }, channels: { EMAIL: stub.channel } });
    const { body } = await gateway.graphql(sendEmail, { input: { to: ['a@example.com'], content: 'x', wait: true } });
    expect(body.data.sendEmail).toMatchObject({ status: 'QUEUED', attempts: 0 });
    await eventually(() => stub.pending.length === 1);
    stub.pending[0].settle({});
  });
});
