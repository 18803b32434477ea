import { afterEach, expect, it } from 'vitest';
import { ChannelError, type Channel, type SendContext, type SendResult } from '../../src/channels/channel';
import type { ChannelName } from '../../src/db/schema';
import type { StoreKind } from '../../src/db/store';
import { describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryFields, eventually } from '../support/gateway';

class ScriptedChannel<C extends ChannelName> implements Channel<C> {
  readonly provider = 'scripted';
  readonly development = true;
  readonly sends: string[] = [];
  constructor(
    readonly channel: C,
    public next: (context: SendContext) => Promise<SendResult> = async () => ({}),
  ) {}
  async send(_message: unknown, context: SendContext): Promise<SendResult> {
    this.sends.push(context.deliveryId);
    return this.next(context);
  }
  sendsFor(id: string) {
    return this.sends.filter((sent) => sent === id).length;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const sendEmail = `mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { ${deliveryFields} } } }`;
const sendDing = `mutation($input: SendDingInput!) { sendDing(input: $input) { __typename ... on Delivery { ${deliveryFields} } } }`;
const cancel = `mutation($id: ID!) { cancelDelivery(id: $id) { __typename ... on Delivery { ${deliveryFields} } ... on Error { code message } } }`;
const retry = `mutation($id: ID!) { retryDelivery(id: $id) { __typename ... on Delivery { ${deliveryFields} } ... on Error { code message } } }`;

const email = { to: ['ops@example.com'], subject: 'disk', content: 'disk full', wait: false };
const ding = { accessToken: 'robot-token', secret: 'SECrobot', content: 'alert', wait: false };

let gateway: AnyGateway | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

async function start(
  kind: StoreKind,
  channels: { EMAIL?: ScriptedChannel<'EMAIL'>; DING?: ScriptedChannel<'DING'> },
  options: { noDispatch?: boolean; env?: Record<string, string> } = {},
) {
  gateway = await startGatewayOn(kind, { channels, ...options });
  return gateway;
}

async function send(g: AnyGateway, query: string, input: Record<string, unknown>) {
  const { body } = await g.graphql(query, { input });
  const delivery = body.data?.sendEmail ?? body.data?.sendDing;
  expect(delivery?.__typename, JSON.stringify(body)).toBe('Delivery');
  return delivery as { id: string; status: string };
}

describeOnStores('cancelDelivery', (kind) => {
  it('cancels a QUEUED delivery, which is then never sent', async () => {
    const channel = new ScriptedChannel('EMAIL');
    const g = await start(kind, { EMAIL: channel }, { noDispatch: true });
    const { id, status } = await send(g, sendEmail, email);
    expect(status).toBe('QUEUED');
    const { body } = await g.graphql(cancel, { id });
    expect(body.data.cancelDelivery).toMatchObject({ __typename: 'Delivery', id, status: 'CANCELLED', nextAttemptAt: null });
    g.app.start();
    // A delivery sent after it, to know the dispatcher has had its turn.
    const { id: later } = await send(g, sendEmail, { ...email, subject: 'later' });
    await eventually(async () => (await g.store.getDelivery(later))?.status === 'SENT');
    expect(channel.sendsFor(id)).toBe(0);
    expect(await g.store.getDelivery(id)).toMatchObject({ status: 'CANCELLED', attempts: 0 });
  });

  it('cancels a RETRYING delivery: no further attempt', async () => {
    const channel = new ScriptedChannel('EMAIL', async () => {
      throw new ChannelError('retryable', 'SMTP_421', '421 try later');
    });
    // A retry 0.75–1.5 s later: time enough to cancel on a loaded machine.
    const g = await start(kind, { EMAIL: channel }, { env: { RETRY_BASE_DELAY_MS: '1500', RETRY_MAX_DELAY_MS: '1500' } });
    const { id } = await send(g, sendEmail, email);
    const retrying = await eventually(async () => {
      const row = await g.store.getDelivery(id);
      return row?.status === 'RETRYING' && row;
    });
    const { body } = await g.graphql(cancel, { id });
    expect(body.data.cancelDelivery).toMatchObject({ status: 'CANCELLED', attempts: 1, nextAttemptAt: null });
    // Past the time the retry was due, and a poll after it.
    await sleep(Math.max(0, retrying.nextAttemptAt! - Date.now()) + 300);
    expect(channel.sendsFor(id)).toBe(1);
    expect(await g.store.getDelivery(id)).toMatchObject({ status: 'CANCELLED', attempts: 1 });
  });

  it('erases the sealed DingTalk credentials of a cancelled delivery', async () => {
    const g = await start(kind, {}, { noDispatch: true });
    const { id } = await send(g, sendDing, ding);
    expect((await g.store.getDelivery(id))?.sealedSecrets).not.toBeNull();
    await g.graphql(cancel, { id });
    expect((await g.store.getDelivery(id))?.sealedSecrets).toBeNull();
  });

  it('refuses a delivery already SENT, or SENDING, with InvalidStateError', async () => {
    let release: () => void = () => {};
    const channel = new ScriptedChannel('EMAIL', () => new Promise<SendResult>((resolve) => (release = () => resolve({}))));
    const g = await start(kind, { EMAIL: channel });
    const { id } = await send(g, sendEmail, email);
    await eventually(async () => (await g.store.getDelivery(id))?.status === 'SENDING');
    const sending = await g.graphql(cancel, { id });
    expect(sending.body.data.cancelDelivery).toMatchObject({ __typename: 'InvalidStateError', code: 'INVALID_STATE' });
    release();
    await eventually(async () => (await g.store.getDelivery(id))?.status === 'SENT');
    const sent = await g.graphql(cancel, { id });
    expect(sent.body.data.cancelDelivery).toMatchObject({
      __typename: 'InvalidStateError',
      code: 'INVALID_STATE',
      message: 'Only a QUEUED or RETRYING delivery can be cancelled',
    });
    expect(await g.store.getDelivery(id)).toMatchObject({ status: 'SENT' });
  });

  it('answers NotFoundError for an unknown id', async () => {
    const g = await start(kind, {}, { noDispatch: true });
    const { body } = await g.graphql(cancel, { id: 'dlv_nope' });
    expect(body.data.cancelDelivery).toMatchObject({ __typename: 'NotFoundError', code: 'NOT_FOUND' });
  });
});

describeOnStores('retryDelivery', (kind) => {
  it('sends a FAILED email again: one more attempt, logged after the first', async () => {
    let fail = true;
    const channel = new ScriptedChannel('EMAIL', async () => {
      if (fail) throw new ChannelError('permanent', 'SMTP_552', '552 mailbox full');
      return { providerMessageId: '<second@sink>' };
    });
    const g = await start(kind, { EMAIL: channel });
    const { id } = await send(g, sendEmail, email);
    await eventually(async () => (await g.store.getDelivery(id))?.status === 'FAILED');
    fail = false;
    const { body } = await g.graphql(retry, { id });
    expect(body.data.retryDelivery).toMatchObject({ __typename: 'Delivery', id, status: 'QUEUED' });
    const row = await eventually(async () => {
      const current = await g.store.getDelivery(id);
      return current?.status === 'SENT' && current;
    });
    expect(row).toMatchObject({ attempts: 2, providerMessageId: '<second@sink>', lastErrorCode: null });
    expect(channel.sendsFor(id)).toBe(2);
    const { body: read } = await g.graphql(`query($id: ID!) { node(id: $id) { ... on Delivery { ${deliveryFields} } } }`, { id });
    expect(read.data.node.attemptLog.map((attempt: { outcome: string; providerCode: string | null }) => [attempt.outcome, attempt.providerCode])).toEqual([
      ['PERMANENT', 'SMTP_552'],
      ['SENT', null],
    ]);
  });

  it('refuses a FAILED DingTalk message whose credentials were erased, and sends nothing', async () => {
    const channel = new ScriptedChannel('DING', async () => {
      throw new ChannelError('permanent', '300001', 'token is not exist');
    });
    const g = await start(kind, { DING: channel });
    const { id } = await send(g, sendDing, ding);
    await eventually(async () => (await g.store.getDelivery(id))?.status === 'FAILED');
    expect((await g.store.getDelivery(id))?.sealedSecrets).toBeNull();
    const { body } = await g.graphql(retry, { id });
    expect(body.data.retryDelivery).toMatchObject({
      __typename: 'InvalidStateError',
      code: 'INVALID_STATE',
      message: 'Its credentials or code were erased when it failed; send a new message instead',
    });
    await sleep(200);
    expect(channel.sendsFor(id)).toBe(1);
    expect(await g.store.getDelivery(id)).toMatchObject({ status: 'FAILED' });
  });

  it('refuses a delivery that is not FAILED', async () => {
    const g = await start(kind, { EMAIL: new ScriptedChannel('EMAIL') });
    const { id } = await send(g, sendEmail, email);
    await eventually(async () => (await g.store.getDelivery(id))?.status === 'SENT');
    const { body } = await g.graphql(retry, { id });
    expect(body.data.retryDelivery).toMatchObject({ __typename: 'InvalidStateError', message: 'Only a FAILED delivery can be retried' });
  });
});
