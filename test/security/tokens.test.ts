import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator, hashToken } from '../../src/auth';
import type { Store } from '../../src/db/store';
import { countDeliveries, databaseContents, describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';
import { testSecretKey, testToken } from '../support/gateway';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `npm run token -- …` the way npm does (tsx), against the gateway's own database. */
function tokenCli(gateway: AnyGateway, ...args: string[]): Promise<CliResult> {
  const database =
    gateway.store.kind === 'postgres'
      ? { DATABASE_URL: gateway.database!.url, NOTIFY_SECRET_KEY: testSecretKey }
      : { DATABASE_URL: `file:${gateway.databasePath}` };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/token.ts', ...args],
      { cwd: root, env: { ...process.env, ...database, OPS_TOKENS: '' } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const sendEmail = 'mutation { sendEmail(input: { to: ["ops@example.com"], content: "x", wait: false }) { __typename ... on Delivery { id } ... on Error { code message } } }';
const sendSms = 'mutation { sendSms(input: { mobile: "13800138000", content: "1234", wait: false }) { __typename ... on Delivery { id } ... on Error { code message } } }';
const listIds = '{ deliveries(first: 100) { edges { node { id } } } }';
const ids = (body: any) => body.data.deliveries.edges.map((edge: any) => edge.node.id).sort();
const countRows = (gateway: AnyGateway) => countDeliveries(gateway);

describeOnStores('npm run token -- create | list | revoke, and what each token may do', (kind) => {
  let gateway: AnyGateway;
  const tokens: Record<'own' | 'all' | 'none', { token: string; id: string }> = {} as never;

  beforeAll(async () => {
    gateway = await startGatewayOn(kind, { noDispatch: true, env: { SEND_WAIT_MS: '0' } });
  });
  afterAll(() => gateway.close());

  it('creates tokens, prints each once on stdout, keeps only its SHA-256 hash, and refuses bad requests', async () => {
    // A name already held (here by a revoked token) stays taken.
    await gateway.store.insertToken({
      id: 'tok_old',
      name: 'old',
      tokenHash: hashToken('old-token'),
      scopes: JSON.stringify({ channels: [], read: 'none' }),
      createdAt: Date.now(),
      revokedAt: Date.now(),
      lastUsedAt: null,
    });
    const [own, all, none, taken, missing, unknown] = await Promise.all([
      tokenCli(gateway, 'create', '--name', 'ci', '--channels', 'DING,EMAIL', '--read', 'own'),
      tokenCli(gateway, 'create', '--name', 'auditor', '--channels', 'all', '--read', 'all'),
      tokenCli(gateway, 'create', '--name', 'blind', '--channels', 'email', '--read', 'none'),
      tokenCli(gateway, 'create', '--name', 'old', '--channels', 'all'),
      tokenCli(gateway, 'create', '--name', 'other'),
      tokenCli(gateway, 'create', '--name', 'third', '--channels', 'DING,FAX'),
    ]);
    const rows = await gateway.store.listTokens();
    for (const [key, { code, stdout, stderr }] of Object.entries({ own, all, none })) {
      expect(code, stderr).toBe(0);
      expect(stdout).toMatch(/^ngw_[A-Za-z0-9_-]{32}\n$/);
      expect(stderr).toMatch(/shown only this once/);
      const token = stdout.trim();
      const row = rows.find((candidate) => candidate.tokenHash === hashToken(token))!;
      expect(row).toBeDefined();
      tokens[key as keyof typeof tokens] = { token, id: row.id };
    }
    const byName = Object.fromEntries(rows.map((row) => [row.name, JSON.parse(row.scopes)]));
    expect(byName).toEqual({
      old: { channels: [], read: 'none' },
      ci: { channels: ['DING', 'EMAIL'], read: 'own' },
      // --channels all: every channel, those added later included.
      auditor: { channels: 'all', read: 'all' },
      blind: { channels: ['EMAIL'], read: 'none' },
    });
    const bytes = await databaseContents(gateway, { checkpoint: true });
    for (const { token, id } of Object.values(tokens)) {
      expect(bytes.includes(Buffer.from(token))).toBe(false);
      // What is there: the token's hash, under its id.
      expect(bytes.includes(Buffer.from(hashToken(token)))).toBe(true);
      expect(bytes.includes(Buffer.from(id))).toBe(true);
    }

    expect([taken.code, missing.code, unknown.code]).toEqual([2, 2, 2]);
    expect(taken.stderr).toMatch(/"old" is taken by a revoked token \(tok_old\)/);
    expect(missing.stderr).toMatch(/--channels is required/);
    expect(unknown.stderr).toMatch(/unknown channel FAX/);
    expect(taken.stdout + missing.stdout + unknown.stdout).toBe('');
  });

  it('refuses a channel the token may not use with FORBIDDEN, recording nothing', async () => {
    const { status, body } = await gateway.graphql(sendSms, {}, { token: tokens.own.token });
    expect(status).toBe(200);
    expect(body.data.sendSms).toEqual({ __typename: 'ForbiddenError', code: 'FORBIDDEN', message: 'This token may not send on SMS' });
    expect(await countRows(gateway)).toBe(0);
  });

  it('records which token sent each delivery, and shows each token only what its read scope allows', async () => {
    const mine = (await gateway.graphql(sendEmail, {}, { token: tokens.own.token })).body.data.sendEmail.id;
    const theirs = (await gateway.graphql(sendEmail, {}, { token: tokens.all.token })).body.data.sendEmail.id;
    const blinds = (await gateway.graphql(sendEmail, {}, { token: tokens.none.token })).body.data.sendEmail.id;
    const ops = (await gateway.graphql(sendSms)).body.data.sendSms.id;
    expect((await gateway.store.getDelivery(mine))?.callerId).toBe(tokens.own.id);
    expect((await gateway.store.getDelivery(theirs))?.callerId).toBe(tokens.all.id);
    expect((await gateway.store.getDelivery(ops))?.callerId).toBe('env:1');

    // read own: its own delivery only, in the list, by id and through node(id).
    expect(ids((await gateway.graphql(listIds, {}, { token: tokens.own.token })).body)).toEqual([mine]);
    const peek = await gateway.graphql('query($a: ID!, $b: ID!) { a: delivery(id: $a) { id } b: node(id: $b) { id } }', { a: theirs, b: theirs }, { token: tokens.own.token });
    expect(peek.body.data).toEqual({ a: null, b: null });
    const cancel = await gateway.graphql('mutation($id: ID!) { cancelDelivery(id: $id) { __typename } }', { id: theirs }, { token: tokens.own.token });
    expect(cancel.body.data.cancelDelivery.__typename).toBe('NotFoundError');
    expect((await gateway.store.getDelivery(theirs))?.status).toBe('QUEUED');

    // read all, and OPS_TOKENS (full rights): everything.
    expect(ids((await gateway.graphql(listIds, {}, { token: tokens.all.token })).body)).toEqual([mine, theirs, blinds, ops].sort());
    expect(ids((await gateway.graphql(listIds)).body)).toEqual([mine, theirs, blinds, ops].sort());

    // read none: may send, may not read, not even its own.
    const blind = await gateway.graphql(listIds, {}, { token: tokens.none.token });
    expect(blind.body.errors![0]).toMatchObject({ message: 'This token may not read deliveries', extensions: { code: 'FORBIDDEN' } });
    const own = await gateway.graphql('query($id: ID!) { delivery(id: $id) { id } }', { id: blinds }, { token: tokens.none.token });
    expect(own.body.data).toEqual({ delivery: null });
  });

  it('lists every token with its scopes and times, never the token or its hash', async () => {
    const [table, json, again, unknown] = await Promise.all([
      tokenCli(gateway, 'list'),
      tokenCli(gateway, 'list', '--json'),
      tokenCli(gateway, 'revoke', 'old'),
      tokenCli(gateway, 'revoke', 'nobody'),
    ]);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    const time = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(lines[0].split(/\s{2,}/)).toEqual(['NAME', 'ID', 'CHANNELS', 'READ', 'CREATED', 'LAST USED', 'REVOKED']);
    expect(lines.find((line) => line.startsWith('ci '))?.split(/\s{2,}/)).toEqual(['ci', tokens.own.id, 'DING,EMAIL', 'own', time, time, '-']);
    expect(lines.find((line) => line.startsWith('old '))?.split(/\s{2,}/)).toEqual(['old', 'tok_old', 'none', 'none', time, '-', time]);
    const listed = JSON.parse(json.stdout) as Record<string, unknown>[];
    expect(listed.map((row) => row.name).sort()).toEqual(['auditor', 'blind', 'ci', 'old']);
    expect(listed.find((row) => row.name === 'blind')).toMatchObject({ id: tokens.none.id, channels: 'EMAIL', read: 'none', revoked: null });
    expect(typeof listed.find((row) => row.name === 'ci')!.lastUsed).toBe('string');
    for (const { token } of Object.values(tokens)) {
      for (const output of [table.stdout, json.stdout]) {
        expect(output).not.toContain(token);
        expect(output).not.toContain(hashToken(token));
      }
    }

    expect([again.code, unknown.code]).toEqual([2, 2]);
    expect(again.stderr).toMatch(/old was already revoked/);
    expect(unknown.stderr).toMatch(/no token named nobody/);
  });

  it('revokes by name or by id, and the very next request with that token is refused', async () => {
    expect((await gateway.graphql(listIds, {}, { token: tokens.own.token })).status).toBe(200);
    const [byName, byId] = await Promise.all([tokenCli(gateway, 'revoke', 'ci'), tokenCli(gateway, 'revoke', tokens.none.id)]);
    expect([byName.code, byId.code]).toEqual([0, 0]);
    for (const token of [tokens.own.token, tokens.none.token]) {
      const { status, body } = await gateway.graphql(sendEmail, {}, { token });
      expect(status).toBe(401);
      expect(body.errors![0].extensions?.code).toBe('UNAUTHENTICATED');
    }
    expect((await gateway.graphql(listIds, {}, { token: tokens.all.token })).status).toBe(200);
    expect((await gateway.graphql(listIds, {}, { token: testToken })).status).toBe(200);
  });
});

describe('Authenticator', () => {
  function fakeStore(scopes = JSON.stringify({ channels: ['EMAIL'], read: 'own' })) {
    const row = { id: 'tok_1', name: 'one', tokenHash: hashToken('secret-1'), scopes, createdAt: 0, revokedAt: null as number | null, lastUsedAt: null };
    const touches: number[] = [];
    const store = {
      findTokenByHash: async (hash: string) => (hash === row.tokenHash ? { ...row } : undefined),
      touchToken: async (_id: string, now: number) => {
        touches.push(now);
      },
    } as unknown as Store;
    return { store, row, touches };
  }

  it('writes last_used_at at most once a minute per token', async () => {
    const { store, touches } = fakeStore();
    let now = 1_000_000;
    const authenticator = new Authenticator(store, [], { now: () => now });
    for (const step of [0, 1_000, 30_000, 59_999]) {
      now = 1_000_000 + step;
      expect(await authenticator.authenticate('secret-1')).toMatchObject({ id: 'tok_1', scopes: { channels: ['EMAIL'], read: 'own' } });
    }
    expect(touches).toEqual([1_000_000]);
    now = 1_060_000;
    await authenticator.authenticate('secret-1');
    expect(touches).toEqual([1_000_000, 1_060_000]);
  });

  it('reads the token on every request: revoked in the store means refused on the next call', async () => {
    const { store, row } = fakeStore();
    const authenticator = new Authenticator(store, []);
    expect(await authenticator.authenticate('secret-1')).toBeDefined();
    row.revokedAt = Date.now();
    expect(await authenticator.authenticate('secret-1')).toBeUndefined();
  });

  it('refuses a stored token whose scopes are not valid instead of guessing them', async () => {
    for (const scopes of ['not json', '{"channels":["FAX"],"read":"own"}', '{"channels":["EMAIL"],"read":"everything"}', '{}']) {
      const { store } = fakeStore(scopes);
      expect(await new Authenticator(store, []).authenticate('secret-1')).toBeUndefined();
    }
  });

  it('gives OPS_TOKENS entries full rights, recorded as env:<n>', async () => {
    const { store } = fakeStore();
    const caller = await new Authenticator(store, ['first', 'second']).authenticate('second');
    expect(caller).toEqual({ id: 'env:2', name: 'OPS_TOKENS #2', scopes: { channels: ['DING', 'EMAIL', 'SMS', 'FEISHU', 'WECOM', 'WEBHOOK'], read: 'all' } });
  });
});
