import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBootstrapToken, fullScopes, hashToken } from '../src/auth';
import { startGateway, testToken, type TestGateway } from './support/gateway';

const probe = '{ deliveries(first: 1) { edges { node { id } } } }';

describe('OPS-Token authentication', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway({ noDispatch: true });
  });
  afterAll(() => gateway.close());

  it.each([
    ['no OPS-Token header', null],
    ['a wrong token', 'wrong-token'],
    ['a token that differs only in its last character', `${testToken.slice(0, -1)}X`],
    ['an empty token', ''],
  ])('refuses %s with HTTP 401 and UNAUTHENTICATED', async (_label, token) => {
    const { status, body } = await gateway.graphql(probe, {}, { token });
    expect(status).toBe(401);
    expect(body.data).toBeUndefined();
    expect(body.errors).toHaveLength(1);
    expect(body.errors![0].extensions?.code).toBe('UNAUTHENTICATED');
    expect(body.errors![0].message).toMatch(/OPS-Token/);
  });

  it('refuses a mutation without a token and records nothing', async () => {
    const { status, body } = await gateway.graphql(
      'mutation { sendEmail(input: { to: ["a@example.com"], content: "x" }) { __typename } }',
      {},
      { token: null },
    );
    expect(status).toBe(401);
    expect(body.errors![0].extensions?.code).toBe('UNAUTHENTICATED');
    const { n } = gateway.store.db.$client.prepare('select count(*) as n from deliveries').get() as { n: number };
    expect(n).toBe(0);
  });

  it('refuses a GET query without a token', async () => {
    const response = await gateway.fetch(`/graphql?query=${encodeURIComponent(probe)}`, {
      headers: { accept: 'application/json' },
    });
    expect(response.status).toBe(401);
    expect((await response.json()).errors[0].extensions.code).toBe('UNAUTHENTICATED');
  });

  it('accepts a token from OPS_TOKENS', async () => {
    const { status, body } = await gateway.graphql(probe, {}, { token: testToken });
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    expect(body.data.deliveries.edges).toEqual([]);
  });

  it('serves the GraphiQL page to a browser without a token', async () => {
    const response = await gateway.fetch('/graphql', { headers: { accept: 'text/html' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/html/);
    const page = await response.text();
    expect(page).toMatch(/graphiql/i);
    expect(page).toContain('OPS-Token');
  });

  it('answers /healthz without a token', async () => {
    const response = await gateway.fetch('/healthz');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('accepts a token stored in api_tokens and refuses it as soon as it is revoked', async () => {
    const token = `ngw_${crypto.randomBytes(12).toString('hex')}`;
    await gateway.store.insertToken({
      id: 'tok_stored',
      name: 'ci',
      tokenHash: hashToken(token),
      scopes: JSON.stringify(fullScopes),
      createdAt: Date.now(),
      revokedAt: null,
      lastUsedAt: null,
    });
    expect((await gateway.graphql(probe, {}, { token })).status).toBe(200);

    expect(await gateway.store.revokeToken('ci', Date.now())).toBe(true);
    const { status, body } = await gateway.graphql(probe, {}, { token });
    expect(status).toBe(401);
    expect(body.errors![0].extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('does not accept the stored hash itself as a token', async () => {
    const token = 'another-stored-token';
    await gateway.store.insertToken({
      id: 'tok_hash',
      name: 'hash-check',
      tokenHash: hashToken(token),
      scopes: JSON.stringify(fullScopes),
      createdAt: Date.now(),
      revokedAt: null,
      lastUsedAt: null,
    });
    expect((await gateway.graphql(probe, {}, { token: hashToken(token) })).status).toBe(401);
  });
});

describe('first-start bootstrap token', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway({ noDispatch: true });
  });
  afterAll(() => gateway.close());

  it('is not created when OPS_TOKENS is set', async () => {
    expect(await ensureBootstrapToken(gateway.store, [testToken])).toBeUndefined();
    expect(await gateway.store.listTokens()).toEqual([]);
  });

  it('creates exactly one token, keeps only its hash, and a second call creates none', async () => {
    const token = await ensureBootstrapToken(gateway.store, []);
    expect(token).toMatch(/^ngw_[A-Za-z0-9_-]{20,}$/);
    const rows = await gateway.store.listTokens();
    expect(rows).toHaveLength(1);
    expect(rows[0].tokenHash).toBe(hashToken(token!));
    expect(rows[0].revokedAt).toBeNull();

    expect(await ensureBootstrapToken(gateway.store, [])).toBeUndefined();
    expect(await gateway.store.listTokens()).toHaveLength(1);

    // Neither the database nor its write-ahead log holds the token in the clear.
    gateway.store.db.$client.pragma('wal_checkpoint(TRUNCATE)');
    for (const file of [gateway.databasePath, `${gateway.databasePath}-wal`]) {
      if (fs.existsSync(file)) expect(fs.readFileSync(file).includes(Buffer.from(token!))).toBe(false);
    }
    expect(fs.readFileSync(gateway.databasePath).includes(Buffer.from(rows[0].tokenHash))).toBe(true);

    const { status } = await gateway.graphql(probe, {}, { token });
    expect(status).toBe(200);
  });
});
