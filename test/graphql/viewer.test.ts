import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TokenScopes } from '../../src/auth';
import { describeOnStores, insertScopedToken, startGatewayOn, type AnyGateway } from '../support/db';

const viewerQuery = '{ viewer { name channels read admin } }';

describeOnStores('viewer', (kind) => {
  let gateway: AnyGateway;

  const storedToken = (name: string, scopes: TokenScopes) => insertScopedToken(gateway, name, scopes);

  const viewer = async (token?: string) => {
    const { status, body } = await gateway.graphql(viewerQuery, {}, token ? { token } : undefined);
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    return body.data.viewer;
  };

  beforeAll(async () => {
    gateway = await startGatewayOn(kind, { noDispatch: true });
  });
  afterAll(() => gateway.close());

  it('shows an OPS_TOKENS entry as an admin with every channel and read ALL', async () => {
    expect(await viewer()).toEqual({ name: 'OPS_TOKENS #1', channels: ['DING', 'EMAIL', 'SMS', 'FEISHU', 'WECOM', 'WEBHOOK'], read: 'ALL', admin: true });
  });

  it('shows a stored token with its own scopes, an admin only with every channel and read ALL', async () => {
    const scoped = await storedToken('ci', { channels: ['DING', 'EMAIL'], read: 'own' });
    const blind = await storedToken('blind', { channels: ['SMS'], read: 'none' });
    const full = await storedToken('ops', { channels: ['DING', 'EMAIL', 'SMS', 'FEISHU', 'WECOM', 'WEBHOOK'], read: 'all' });
    // Stored before FEISHU, WECOM and WEBHOOK existed: keeps exactly its channels, so it is no longer an admin.
    const earlier = await storedToken('ops-before-robots', { channels: ['DING', 'EMAIL', 'SMS'], read: 'all' });
    expect(await viewer(scoped)).toEqual({ name: 'ci', channels: ['DING', 'EMAIL'], read: 'OWN', admin: false });
    expect(await viewer(blind)).toEqual({ name: 'blind', channels: ['SMS'], read: 'NONE', admin: false });
    expect(await viewer(full)).toEqual({ name: 'ops', channels: ['DING', 'EMAIL', 'SMS', 'FEISHU', 'WECOM', 'WEBHOOK'], read: 'ALL', admin: true });
    expect(await viewer(earlier)).toEqual({ name: 'ops-before-robots', channels: ['DING', 'EMAIL', 'SMS'], read: 'ALL', admin: false });
  });

  it('shows a read-only token (no channels, read ALL) as no admin', async () => {
    const auditor = await storedToken('auditor', { channels: [], read: 'all' });
    expect(await viewer(auditor)).toEqual({ name: 'auditor', channels: [], read: 'ALL', admin: false });
  });

  it('is refused with 401 without a valid token, like every operation', async () => {
    const { status, body } = await gateway.graphql(viewerQuery, {}, { token: 'not-a-token' });
    expect(status).toBe(401);
    expect(body.errors![0].extensions?.code).toBe('UNAUTHENTICATED');
  });
});
