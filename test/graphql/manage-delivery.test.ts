import { afterAll, beforeAll, expect, it } from 'vitest';
import { hashToken, type TokenScopes } from '../../src/auth';
import type { NewDeliveryRow } from '../../src/db/schema';
import { describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';
import { deliveryRow } from '../support/stores';

const listQuery = '{ deliveries(first: 100) { edges { node { id viewerCanRetry viewerCanCancel } } } }';
const cancel = 'mutation($id: ID!) { cancelDelivery(id: $id) { __typename ... on Delivery { status } ... on Error { code message } } }';
const retry = 'mutation($id: ID!) { retryDelivery(id: $id) { __typename ... on Delivery { status } ... on Error { code message } } }';

/**
 * Who may cancel and retry: a token that reads the delivery and may send on its channel. viewerCanCancel and
 * viewerCanRetry say beforehand what the mutations then do.
 */
describeOnStores('cancelDelivery, retryDelivery and viewerCan… by token', (kind) => {
  let gateway: AnyGateway;
  const owner = 'owner-token-0123456789';
  const reader = 'reader-token-0123456789';
  const rows: Record<string, NewDeliveryRow> = {};

  async function storedToken(id: string, token: string, scopes: TokenScopes) {
    await gateway.store.insertToken({
      id,
      name: id.slice(4),
      tokenHash: hashToken(token),
      scopes: JSON.stringify(scopes),
      createdAt: Date.now(),
      revokedAt: null,
      lastUsedAt: null,
    });
  }

  /** What each delivery this token may read shows: [viewerCanCancel, viewerCanRetry] by row name. */
  async function abilities(token: string): Promise<Record<string, [boolean, boolean]>> {
    const { status, body } = await gateway.graphql(listQuery, {}, { token });
    expect(status).toBe(200);
    const byId = new Map(Object.entries(rows).map(([name, row]) => [row.id, name]));
    return Object.fromEntries(
      body.data.deliveries.edges.map(({ node }: any) => [byId.get(node.id), [node.viewerCanCancel, node.viewerCanRetry]]),
    );
  }

  const statusOf = async (name: string) => (await gateway.store.getDelivery(rows[name].id))?.status;

  beforeAll(async () => {
    gateway = await startGatewayOn(kind, { noDispatch: true });
    // Sends only on EMAIL, reads what it sent.
    await storedToken('tok_owner', owner, { channels: ['EMAIL'], read: 'own' });
    // Reads everything, sends nothing.
    await storedToken('tok_reader', reader, { channels: [], read: 'all' });
    const now = Date.now();
    const seeds: Record<string, Partial<NewDeliveryRow>> = {
      queuedEmail: { callerId: 'tok_owner' },
      failedEmail: { callerId: 'tok_owner', status: 'FAILED', nextAttemptAt: null },
      // A DingTalk or SMS delivery loses its credentials or code when it fails: it cannot be retried.
      failedSms: { callerId: 'tok_owner', channel: 'SMS', provider: 'log', recipient: '+8613800138000', status: 'FAILED', nextAttemptAt: null },
      // Sent by the owner before its channels were narrowed, say: it reads it but may not act on SMS.
      queuedSms: { callerId: 'tok_owner', channel: 'SMS', provider: 'log', recipient: '+8613800138000' },
      retryingEmail: { callerId: 'tok_owner', status: 'RETRYING' },
      othersEmail: { callerId: 'env:1' },
      sentEmail: { callerId: 'tok_owner', status: 'SENT', nextAttemptAt: null, sentAt: now },
    };
    let offset = 0;
    for (const [name, overrides] of Object.entries(seeds)) {
      rows[name] = deliveryRow({ createdAt: now - 60_000 + offset++, ...overrides });
      await gateway.store.insertDelivery(rows[name]);
    }
  });
  afterAll(() => gateway.close());

  it('tells each token which deliveries it may cancel or retry: admin, own-scope owner, read-only token', async () => {
    expect(await abilities(gateway.config.opsTokens[0])).toEqual({
      queuedEmail: [true, false],
      failedEmail: [false, true],
      failedSms: [false, false],
      queuedSms: [true, false],
      retryingEmail: [true, false],
      othersEmail: [true, false],
      sentEmail: [false, false],
    });
    // Only its own deliveries are listed, and on SMS it may not act.
    expect(await abilities(owner)).toEqual({
      queuedEmail: [true, false],
      failedEmail: [false, true],
      failedSms: [false, false],
      queuedSms: [false, false],
      retryingEmail: [true, false],
      sentEmail: [false, false],
    });
    const readOnly = await abilities(reader);
    expect(Object.keys(readOnly)).toHaveLength(7);
    expect(Object.values(readOnly).every(([canCancel, canRetry]) => !canCancel && !canRetry)).toBe(true);
  });

  it('refuses a read-only token with ForbiddenError, and nothing changes', async () => {
    const cancelled = await gateway.graphql(cancel, { id: rows.queuedEmail.id }, { token: reader });
    expect(cancelled.body.data.cancelDelivery).toEqual({
      __typename: 'ForbiddenError',
      code: 'FORBIDDEN',
      message: 'This token may not cancel or retry deliveries on EMAIL',
    });
    const retried = await gateway.graphql(retry, { id: rows.failedEmail.id }, { token: reader });
    expect(retried.body.data.retryDelivery).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN' });
    expect([await statusOf('queuedEmail'), await statusOf('failedEmail')]).toEqual(['QUEUED', 'FAILED']);
  });

  it('refuses the owner on a channel it may not send on (ForbiddenError), and on what it may not read (NotFoundError)', async () => {
    const sms = await gateway.graphql(cancel, { id: rows.queuedSms.id }, { token: owner });
    expect(sms.body.data.cancelDelivery).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN' });
    const others = await gateway.graphql(cancel, { id: rows.othersEmail.id }, { token: owner });
    expect(others.body.data.cancelDelivery).toMatchObject({ __typename: 'NotFoundError', code: 'NOT_FOUND' });
    expect([await statusOf('queuedSms'), await statusOf('othersEmail')]).toEqual(['QUEUED', 'QUEUED']);
  });

  it('lets the owner cancel and retry what it may, and the admin anything manageable', async () => {
    const cancelled = await gateway.graphql(cancel, { id: rows.queuedEmail.id }, { token: owner });
    expect(cancelled.body.data.cancelDelivery).toEqual({ __typename: 'Delivery', status: 'CANCELLED' });
    const retried = await gateway.graphql(retry, { id: rows.failedEmail.id }, { token: owner });
    expect(retried.body.data.retryDelivery).toEqual({ __typename: 'Delivery', status: 'QUEUED' });
    const erased = await gateway.graphql(retry, { id: rows.failedSms.id });
    expect(erased.body.data.retryDelivery).toMatchObject({ __typename: 'InvalidStateError', code: 'INVALID_STATE' });
    const sms = await gateway.graphql(cancel, { id: rows.queuedSms.id });
    expect(sms.body.data.cancelDelivery).toEqual({ __typename: 'Delivery', status: 'CANCELLED' });
    expect(await statusOf('queuedEmail')).toBe('CANCELLED');
    expect(await statusOf('failedEmail')).toBe('QUEUED');
    expect(await statusOf('failedSms')).toBe('FAILED');

    // And the flags follow the new states.
    const now = await abilities(owner);
    expect(now.queuedEmail).toEqual([false, false]);
    expect(now.failedEmail).toEqual([true, false]);
  });
});
