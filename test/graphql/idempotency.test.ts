import { afterAll, beforeAll, expect, it } from 'vitest';
import { fullScopes, hashToken } from '../../src/auth';
import { countDeliveries, describeOnStores, mutationResult, startGatewayOn, type AnyGateway } from '../support/db';

const sendEmail = `mutation($input: SendEmailInput!) {
  sendEmail(input: $input) {
    __typename
    ... on Delivery { id status }
    ... on Error { message code }
    ... on IdempotencyConflictError { idempotencyKey }
  }
}`;

describeOnStores('idempotency keys on send mutations', (kind) => {
  let gateway: AnyGateway;
  const count = () => countDeliveries(gateway);
  const send = (input: Record<string, unknown>, options?: { token?: string; headers?: Record<string, string> }) =>
    mutationResult(gateway, sendEmail, input, options);

  beforeAll(async () => {
    gateway = await startGatewayOn(kind);
  });
  afterAll(() => gateway.close());

  it('answers the original delivery for the same key and payload, recording it once', async () => {
    const input = { to: ['a@example.com'], subject: 'deploy', content: 'v1.2', idempotencyKey: 'deploy-v1.2' };
    const first = await send(input);
    expect(first).toMatchObject({ __typename: 'Delivery', status: 'SENT' });
    const before = await count();
    const again = await send({ ...input, wait: false });
    expect(again).toEqual(first);
    expect(await count()).toBe(before);
  });

  it('refuses the same key with another payload, recording nothing', async () => {
    await send({ to: ['a@example.com'], content: 'one', idempotencyKey: 'k-conflict' });
    const before = await count();
    const conflict = await send({ to: ['a@example.com'], content: 'two', idempotencyKey: 'k-conflict' });
    expect(conflict).toMatchObject({
      __typename: 'IdempotencyConflictError',
      code: 'IDEMPOTENCY_CONFLICT',
      idempotencyKey: 'k-conflict',
    });
    expect(await count()).toBe(before);
  });

  it('takes the key from the Idempotency-Key header; a key in the input wins', async () => {
    const headers = { 'Idempotency-Key': 'from-header' };
    const first = await send({ to: ['b@example.com'], content: 'x' }, { headers });
    expect((await send({ to: ['b@example.com'], content: 'x' }, { headers })).id).toBe(first.id);
    const other = await send({ to: ['b@example.com'], content: 'x', idempotencyKey: 'in-input' }, { headers });
    expect(other.id).not.toBe(first.id);
    expect((await gateway.store.getDelivery(other.id))?.idempotencyKey).toBe('in-input');
  });

  it('scopes keys to the token that sent them', async () => {
    const token = 'second-caller-token';
    await gateway.store.insertToken({
      id: 'tok_second',
      name: 'second',
      tokenHash: hashToken(token),
      scopes: JSON.stringify(fullScopes),
      createdAt: Date.now(),
      revokedAt: null,
      lastUsedAt: null,
    });
    const input = { to: ['c@example.com'], content: 'x', idempotencyKey: 'shared-key' };
    const mine = await send(input);
    const theirs = await send(input, { token });
    expect(theirs.__typename).toBe('Delivery');
    expect(theirs.id).not.toBe(mine.id);
  });
});
