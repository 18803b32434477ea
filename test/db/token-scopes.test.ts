import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hashToken } from '../../src/auth';
import { ApiTokens, parseScopes, serializeScopes } from '../../src/api-tokens';
import { channels } from '../../src/db/enums';
import { describeOnStores, executeSql, startGatewayOn, type AnyGateway } from '../support/db';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const migration = (kind: string) =>
  fs.readFileSync(path.join(root, 'drizzle', kind, kind === 'sqlite' ? '0002_tokens-all-channels.sql' : '0001_tokens-all-channels.sql'), 'utf8');

const viewer = '{ viewer { channels read admin } }';

describeOnStores('tokens with every channel keep every channel as channels are added', (kind) => {
  let gateway: AnyGateway;
  beforeAll(async () => {
    gateway = await startGatewayOn(kind, { noDispatch: true });
    // Rows as the gateway wrote them when it had three channels: `--channels all` (read all, and read own), and one channel.
    const old = [
      ['tok_old_admin', 'old-admin', '{"channels":["DING","EMAIL","SMS"],"read":"all"}'],
      ['tok_old_own', 'old-own', '{"channels":["DING","EMAIL","SMS"],"read":"own"}'],
      ['tok_old_email', 'old-email', '{"channels":["EMAIL"],"read":"all"}'],
    ];
    for (const [id, name, scopes] of old) {
      await gateway.store.insertToken({ id, name, tokenHash: hashToken(`${name}-token-0123456789`), scopes, createdAt: Date.now(), revokedAt: null, lastUsedAt: null });
    }
    await executeSql(gateway, migration(kind));
  });
  afterAll(() => gateway?.close());

  it('the migration turns the three-channel list into "all" and leaves narrower tokens alone', async () => {
    const stored = Object.fromEntries((await gateway.store.listTokens()).map((row) => [row.name, row.scopes]));
    expect(stored).toMatchObject({
      'old-admin': '{"channels":"all","read":"all"}',
      'old-own': '{"channels":"all","read":"own"}',
      'old-email': '{"channels":["EMAIL"],"read":"all"}',
    });
    const asSeen = async (name: string) => (await gateway.graphql(viewer, {}, { token: `${name}-token-0123456789` })).body.data.viewer;
    expect(await asSeen('old-admin')).toEqual({ channels: [...channels], read: 'ALL', admin: true });
    expect(await asSeen('old-own')).toEqual({ channels: [...channels], read: 'OWN', admin: false });
    expect(await asSeen('old-email')).toEqual({ channels: ['EMAIL'], read: 'ALL', admin: false });
  });

  it('a token made with every channel is stored as "all"; one with some, as the list', async () => {
    const tokens = new ApiTokens(gateway.store);
    const every = await tokens.create('every-channel', { channels: [...channels], read: 'all' });
    const some = await tokens.create('some-channels', { channels: ['SMS', 'DING'], read: 'none' });
    expect(every.row.scopes).toBe('{"channels":"all","read":"all"}');
    expect(some.row.scopes).toBe('{"channels":["DING","SMS"],"read":"none"}');
    expect((await gateway.graphql(viewer, {}, { token: every.token })).body.data.viewer.admin).toBe(true);
  });
});

it('stored scopes: "all" means every channel; anything else unknown is refused, not widened', () => {
  expect(parseScopes('{"channels":"all","read":"own"}')).toEqual({ channels: [...channels], read: 'own' });
  expect(parseScopes('{"channels":"every","read":"own"}')).toBeUndefined();
  expect(parseScopes('{"channels":["EMAIL","PIGEON"],"read":"own"}')).toBeUndefined();
  expect(serializeScopes({ channels: [...channels].reverse(), read: 'all' })).toBe('{"channels":"all","read":"all"}');
});
