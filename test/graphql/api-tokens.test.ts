import { afterAll, beforeAll, expect, it } from 'vitest';
import { hashToken, type TokenScopes } from '../../src/auth';
import type { ApiTokenRow } from '../../src/db/schema';
import { databaseContents, describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';
import { eventually, testToken } from '../support/gateway';

const tokenFields = 'id name channels read createdAt lastUsedAt revokedAt';
const listTokens = `{ apiTokens { ${tokenFields} } }`;
const createToken = `mutation($input: CreateApiTokenInput!) {
  createApiToken(input: $input) {
    __typename
    ... on CreatedApiToken { token apiToken { ${tokenFields} } }
    ... on ValidationError { fieldErrors { path message } }
    ... on Error { code message }
  }
}`;
const revokeToken = `mutation($id: ID!) {
  revokeApiToken(id: $id) { __typename ... on ApiToken { ${tokenFields} } ... on Error { code message } } 
}`;
const viewer = '{ viewer { name channels read admin } }';

/** The rows as stored, without last_used_at (which any authenticated request may write). */
const withoutUse = (rows: ApiTokenRow[]) => rows.map(({ lastUsedAt: _lastUsedAt, ...row }) => row);

describeOnStores('apiTokens, createApiToken, revokeApiToken', (kind) => {
  let gateway: AnyGateway;
  const scoped = 'scoped-token-0123456789';
  const readOnly = 'read-only-token-0123456789';
  const storedAdmin = 'stored-admin-token-0123456789';

  async function storedToken(name: string, token: string, scopes: TokenScopes, createdAt: number, revokedAt: number | null = null) {
    await gateway.store.insertToken({
      id: `tok_${name}`,
      name,
      tokenHash: hashToken(token),
      scopes: JSON.stringify(scopes),
      createdAt,
      revokedAt,
      lastUsedAt: null,
    });
  }

  const graphql = async (query: string, variables: Record<string, unknown> = {}, token = testToken) => {
    const { status, body } = await gateway.graphql(query, variables, { token });
    expect(status).toBe(200);
    return body;
  };

  beforeAll(async () => {
    gateway = await startGatewayOn(kind, { noDispatch: true });
    const start = Date.now() - 60_000;
    await storedToken('old', 'old-token-0123456789', { channels: [], read: 'none' }, start, start + 1000);
    await storedToken('scoped', scoped, { channels: ['EMAIL'], read: 'all' }, start + 2000);
    await storedToken('read-only', readOnly, { channels: [], read: 'all' }, start + 3000);
    await storedToken('stored-admin', storedAdmin, { channels: ['DING', 'EMAIL', 'SMS', 'FEISHU', 'WECOM', 'WEBHOOK'], read: 'all' }, start + 4000);
  });
  afterAll(() => gateway.close());

  it('lists every stored token newest first, revoked ones included, never the token or its hash', async () => {
    const body = await graphql(listTokens);
    expect(body.errors).toBeUndefined();
    expect(body.data.apiTokens.map((token: any) => token.name)).toEqual(['stored-admin', 'read-only', 'scoped', 'old']);
    expect(body.data.apiTokens[3]).toEqual({
      id: 'tok_old',
      name: 'old',
      channels: [],
      read: 'NONE',
      createdAt: expect.any(String),
      lastUsedAt: null,
      revokedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(body.data.apiTokens[2]).toMatchObject({ id: 'tok_scoped', channels: ['EMAIL'], read: 'ALL', revokedAt: null });
    const text = JSON.stringify(body);
    for (const token of [scoped, readOnly, storedAdmin]) {
      expect(text).not.toContain(token);
      expect(text).not.toContain(hashToken(token));
    }
  });

  it('refuses a token that is not an admin with FORBIDDEN, and nothing changes in the database', async () => {
    for (const token of [scoped, readOnly]) {
      const before = withoutUse(await gateway.store.listTokens());
      const listed = await graphql(listTokens, {}, token);
      expect(listed.data).toBeNull();
      expect(listed.errors).toEqual([
        expect.objectContaining({ extensions: { code: 'FORBIDDEN' }, message: 'Only a token with every channel and read ALL may manage API tokens' }),
      ]);
      const created = await graphql(createToken, { input: { name: 'sneaky', channels: ['DING', 'EMAIL', 'SMS'], read: 'ALL' } }, token);
      expect(created.data.createApiToken).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN' });
      const revoked = await graphql(revokeToken, { id: 'tok_stored-admin' }, token);
      expect(revoked.data.revokeApiToken).toMatchObject({ __typename: 'ForbiddenError', code: 'FORBIDDEN' });
      expect(withoutUse(await gateway.store.listTokens())).toEqual(before);
    }
  });

  it('creates a token that works on its very next request; the row holds only its hash, no log line holds it', async () => {
    const body = await graphql(createToken, { input: { name: 'console.ci-1', channels: ['SMS', 'EMAIL', 'EMAIL'], read: 'OWN' } });
    const created = body.data.createApiToken;
    expect(created).toEqual({
      __typename: 'CreatedApiToken',
      token: expect.stringMatching(/^ngw_[A-Za-z0-9_-]{32}$/),
      apiToken: {
        id: expect.stringMatching(/^tok_[0-9a-f]{16}$/),
        name: 'console.ci-1',
        channels: ['EMAIL', 'SMS'],
        read: 'OWN',
        createdAt: expect.any(String),
        lastUsedAt: null,
        revokedAt: null,
      },
    });
    const { token, apiToken } = created;

    const row = (await gateway.store.listTokens()).find((candidate) => candidate.id === apiToken.id)!;
    expect(row).toMatchObject({ name: 'console.ci-1', tokenHash: hashToken(token), revokedAt: null });
    expect(JSON.parse(row.scopes)).toEqual({ channels: ['EMAIL', 'SMS'], read: 'own' });
    const bytes = await databaseContents(gateway, { checkpoint: true });
    expect(bytes.includes(Buffer.from(token))).toBe(false);
    expect(bytes.includes(Buffer.from(hashToken(token)))).toBe(true);

    expect((await graphql(viewer, {}, token)).data.viewer).toEqual({ name: 'console.ci-1', channels: ['EMAIL', 'SMS'], read: 'OWN', admin: false });
    const used = await eventually(async () => {
      const listed = (await graphql(listTokens)).data.apiTokens.find((candidate: any) => candidate.id === apiToken.id);
      return listed.lastUsedAt !== null && listed;
    });
    expect(Date.parse(used.lastUsedAt)).toBeGreaterThanOrEqual(Date.parse(apiToken.createdAt));

    // Created, answered, then used: logged as requests and once as an audit line (who made which token), never with
    // the token in them.
    expect(gateway.logs.filter((line) => line.component === 'audit')).toEqual([
      expect.objectContaining({ msg: 'API token created', tokenId: apiToken.id, tokenName: 'console.ci-1', by: 'env:1' }),
    ]);
    expect(JSON.stringify(gateway.logs)).not.toContain(token);
  });

  it('refuses a name that is taken (revoked tokens included) or malformed with a ValidationError on name', async () => {
    const before = await gateway.store.listTokens();
    const refusals: [string, RegExp][] = [
      ['old', /^is taken by a revoked token \(tok_old\)/],
      ['scoped', /^is taken by an active token \(tok_scoped\)/],
      ['tok_mine', /^must be 1 to 64 letters/],
      ['has space', /^must be 1 to 64 letters/],
      ['', /^must be 1 to 64 letters/],
      ['x'.repeat(65), /^must be 1 to 64 letters/],
    ];
    for (const [name, message] of refusals) {
      const body = await graphql(createToken, { input: { name, channels: ['EMAIL'], read: 'NONE' } });
      expect(body.data.createApiToken).toMatchObject({
        __typename: 'ValidationError',
        code: 'INVALID_ARGUMENT',
        fieldErrors: [{ path: 'name', message: expect.stringMatching(message) }],
      });
    }
    expect((await gateway.store.listTokens()).length).toBe(before.length);
  });

  it('creates one token when two requests race for the same name', async () => {
    const input = { name: 'racer', channels: ['DING'], read: 'NONE' };
    const answers = await Promise.all([graphql(createToken, { input }), graphql(createToken, { input })]);
    expect(answers.map((body) => body.data.createApiToken.__typename).sort()).toEqual(['CreatedApiToken', 'ValidationError']);
    expect((await gateway.store.listTokens()).filter((row) => row.name === 'racer')).toHaveLength(1);
  });

  it('revokes a token: its next request is refused with 401; again is INVALID_STATE, an unknown id NOT_FOUND', async () => {
    const created = (await graphql(createToken, { input: { name: 'short-lived', channels: ['EMAIL'], read: 'ALL' } })).data.createApiToken;
    expect((await gateway.graphql(viewer, {}, { token: created.token })).status).toBe(200);

    const revoked = (await graphql(revokeToken, { id: created.apiToken.id })).data.revokeApiToken;
    expect(revoked).toMatchObject({ __typename: 'ApiToken', id: created.apiToken.id, name: 'short-lived', revokedAt: expect.any(String) });
    const refused = await gateway.graphql(viewer, {}, { token: created.token });
    expect(refused.status).toBe(401);
    expect(refused.body.errors![0].extensions?.code).toBe('UNAUTHENTICATED');
    const row = (await gateway.store.listTokens()).find((candidate) => candidate.id === created.apiToken.id)!;
    expect(row.revokedAt).toBe(Date.parse(revoked.revokedAt));
    expect(gateway.logs.filter((line) => line.msg === 'API token revoked')).toEqual([
      expect.objectContaining({ component: 'audit', tokenId: created.apiToken.id, tokenName: 'short-lived', by: 'env:1' }),
    ]);

    expect((await graphql(revokeToken, { id: created.apiToken.id })).data.revokeApiToken).toMatchObject({
      __typename: 'InvalidStateError',
      code: 'INVALID_STATE',
    });
    expect((await graphql(revokeToken, { id: 'tok_nobody' })).data.revokeApiToken).toMatchObject({
      __typename: 'NotFoundError',
      code: 'NOT_FOUND',
    });
    // An id, not a name: a token's name does not revoke it.
    expect((await graphql(revokeToken, { id: 'scoped' })).data.revokeApiToken).toMatchObject({ __typename: 'NotFoundError' });
    expect((await gateway.store.listTokens()).find((candidate) => candidate.name === 'scoped')?.revokedAt).toBeNull();
  });

  it('lets an admin token revoke itself: the answer comes, the next request is refused', async () => {
    const revoked = (await graphql(revokeToken, { id: 'tok_stored-admin' }, storedAdmin)).data.revokeApiToken;
    expect(revoked).toMatchObject({ __typename: 'ApiToken', id: 'tok_stored-admin', revokedAt: expect.any(String) });
    expect((await gateway.graphql(viewer, {}, { token: storedAdmin })).status).toBe(401);
    expect((await gateway.graphql(viewer)).status).toBe(200);
  });
});
