import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ReadScope } from '../../src/auth';
import { StoreUnavailableError } from '../../src/errors';
import { graphqlLimits } from '../../src/graphql/yoga';
import { maxOperationsPerConnection } from '../../src/graphql/serve-over-websocket';
import { insertScopedToken } from '../support/db';
import { eventually, startGateway, testToken, type TestGateway } from '../support/gateway';
import { execute, subscribe, webSocketClient, type WebSocketClient } from '../support/websocket';

const watch = `subscription($id: ID, $channel: Channel) { deliveryUpdated(id: $id, channel: $channel) { id channel status attempts } }`;
const sendEmail = `mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { id status } } }`;

describe('GraphQL over WebSocket (graphql-ws)', { timeout: 30_000 }, () => {
  let gateway: TestGateway;
  let base: string;
  const clients: WebSocketClient[] = [];
  const tokens: Record<string, string> = {};

  async function addToken(name: string, read: ReadScope) {
    tokens[name] = await insertScopedToken(gateway, name, { channels: ['EMAIL'], read });
  }

  const connect = (...params: [Record<string, unknown> | undefined] | []) => {
    const connection = webSocketClient(base, params.length === 0 ? { 'OPS-Token': testToken } : params[0]);
    clients.push(connection);
    return connection;
  };

  const send = async (subject: string, token = testToken) => {
    const { body } = await gateway.graphql(sendEmail, { input: { to: ['ops@example.com'], subject, content: 'body', wait: false } }, { token });
    expect(body.data?.sendEmail.__typename).toBe('Delivery');
    return body.data.sendEmail.id as string;
  };

  const metric = async (pattern: RegExp) => Number(pattern.exec(await (await gateway.fetch('/metrics')).text())?.[1] ?? 0);

  beforeAll(async () => {
    gateway = await startGateway({ env: { WEBSOCKET_TOKEN_RECHECK_MS: '200' } });
    base = await gateway.listen();
    await addToken('own-reader', 'own');
    await addToken('no-reader', 'none');
  });
  afterAll(async () => {
    await Promise.all(clients.map((connection) => connection.dispose()));
    await gateway.close();
  });

  it('a subscription by id sees QUEUED, SENDING, SENT, then completes', async () => {
    await gateway.app.stop(0);
    const id = await send('watched over a socket');
    const { client } = connect();
    const updates = subscribe<{ deliveryUpdated: { id: string; status: string; attempts: number } }>(client, watch, { id });
    expect(await updates.next()).toEqual({ data: { deliveryUpdated: { id, channel: 'EMAIL', status: 'QUEUED', attempts: 0 } } });
    gateway.app.start();
    await updates.done;
    expect(updates.results.map((result) => result.data?.deliveryUpdated.status)).toEqual(['QUEUED', 'SENDING', 'SENT']);
    expect(updates.results.at(-1)?.data?.deliveryUpdated.attempts).toBe(1);
    expect((await gateway.store.getDelivery(id))?.status).toBe('SENT');
  });

  it('queries and mutations run over the socket too, counted under transport="websocket"', async () => {
    const before = await metric(/graphql_operations_total\{transport="websocket",operation_type="mutation",operation="sendEmail",outcome="success"\} (\d+)/);
    const { client } = connect();
    const sent = await execute(client, sendEmail, { input: { to: ['socket@example.com'], subject: 'over ws', content: 'x', idempotencyKey: 'ws-1' } });
    const id = sent.data?.sendEmail.id;
    expect(sent).toMatchObject({ data: { sendEmail: { __typename: 'Delivery', status: 'SENT' } } });
    const again = await execute(client, sendEmail, { input: { to: ['socket@example.com'], subject: 'over ws', content: 'x', idempotencyKey: 'ws-1' } });
    expect(again.data?.sendEmail.id).toBe(id);
    const read = await execute(client, 'query($id: ID!) { delivery(id: $id) { id recipient status } }', { id });
    expect(read.data?.delivery).toEqual({ id, recipient: 'socket@example.com', status: 'SENT' });
    expect(await metric(/graphql_operations_total\{transport="websocket",operation_type="mutation",operation="sendEmail",outcome="success"\} (\d+)/)).toBe(before + 2);
    expect(await metric(/websocket_connections (\d+)/)).toBeGreaterThanOrEqual(1);
    // The log has a line per operation, with the operation's root field and never the token.
    await eventually(() => gateway.logs.some((line) => line.msg === 'websocket operation' && line.operation === 'query delivery'));
    expect(JSON.stringify(gateway.logs)).not.toContain(testToken);
  });

  it.each([
    ['a wrong token', { 'OPS-Token': 'not-a-token-0123456789' }],
    ['no token', {}],
    ['no connection params', undefined],
  ])('%s: closed with 4403 before any operation runs', async (_name, params) => {
    const refusalsBefore = await metric(/websocket_refused_total\{reason="unauthenticated"\} (\d+)/);
    const count = async () => (await gateway.store.countByStatus()).reduce((sum, row) => sum + row.count, 0);
    const before = await count();
    const connection = connect(params);
    const attempt = subscribe(connection.client, sendEmail, { input: { to: ['never@example.com'], content: 'x', wait: false } });
    await expect(attempt.done).rejects.toMatchObject({ code: 4403, reason: 'Forbidden' });
    expect((await connection.closed).code).toBe(4403);
    expect(attempt.results).toEqual([]);
    expect(await count()).toBe(before);
    expect(await metric(/websocket_refused_total\{reason="unauthenticated"\} (\d+)/)).toBe(refusalsBefore + 1);
  });

  it('a storage fault while the token is looked up closes with 1013 (try again later), not 4403', async () => {
    const authenticator = gateway.app.authenticator as { authenticate: (token?: string | null) => Promise<unknown> };
    const original = authenticator.authenticate;
    authenticator.authenticate = async () => {
      throw new StoreUnavailableError('The gateway cannot reach its database; try again shortly', 2);
    };
    try {
      const connection = connect();
      expect(await connection.closed).toEqual({ code: 1013, reason: 'Try again later' });
    } finally {
      authenticator.authenticate = original;
    }
    expect(gateway.logs.some((line) => line.msg === 'unexpected error on a websocket connection')).toBe(false);
  });

  it("a token with read 'own' cannot follow another caller's delivery, and sees only its own changes", async () => {
    const others = await send('not yours');
    const { client } = connect({ 'OPS-Token': tokens['own-reader'] });
    // Refused when the subscription starts: one result with the error, then the end (graphql-ws's `next`, `complete`).
    const byId = subscribe(client, watch, { id: others });
    await byId.done;
    expect(byId.results).toEqual([
      { errors: [expect.objectContaining({ message: `No delivery ${others}`, extensions: { code: 'NOT_FOUND' } })] },
    ]);

    const all = subscribe<{ deliveryUpdated: { id: string; status: string } }>(client, watch, { channel: 'EMAIL' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const someoneElses = await send('still not yours');
    const mine = await send('yours', tokens['own-reader']);
    await eventually(async () => (await gateway.store.getDelivery(mine))?.status === 'SENT');
    await eventually(async () => (await gateway.store.getDelivery(someoneElses))?.status === 'SENT');
    await eventually(() => all.results.some((result) => result.data?.deliveryUpdated.status === 'SENT'));
    all.unsubscribe();
    expect(new Set(all.results.map((result) => result.data?.deliveryUpdated.id))).toEqual(new Set([mine]));

    const none = connect({ 'OPS-Token': tokens['no-reader'] });
    const forbidden = subscribe(none.client, watch, { channel: 'EMAIL' });
    await forbidden.done;
    expect(forbidden.results).toEqual([{ errors: [expect.objectContaining({ extensions: { code: 'FORBIDDEN' } })] }]);
  });

  it('an alias flood is refused as over HTTP, and nothing runs', async () => {
    const aliases = Array.from({ length: graphqlLimits.maxAliases + 1 }, (_, n) => `a${n}: viewer { name }`).join(' ');
    const query = `{ ${aliases} }`;
    const overHttp = await gateway.graphql(query);
    expect(overHttp.body.errors?.[0].message).toMatch(/aliases/i);
    const { client } = connect();
    const flood = subscribe(client, query);
    await expect(flood.done).rejects.toEqual([expect.objectContaining({ message: overHttp.body.errors![0].message })]);
    expect(flood.results).toEqual([]);
    // So is a document with more tokens than allowed (parse), and a deep one (validation).
    const tokensFlood = `{ viewer { ${'name '.repeat(graphqlLimits.maxTokens)} } }`;
    await expect(subscribe(client, tokensFlood).done).rejects.toEqual([expect.objectContaining({ message: expect.stringMatching(/token/i) })]);
  });

  it('unexpected errors are masked over the socket too', async () => {
    const { client } = connect();
    const broken = gateway.app.service as unknown as { getDelivery: (...args: unknown[]) => Promise<unknown> };
    const original = broken.getDelivery;
    broken.getDelivery = async () => {
      throw new Error('SQLITE_CORRUPT at /var/lib/secret/path.db');
    };
    try {
      const result = await execute(client, 'query { delivery(id: "dlv_x") { id } }');
      expect(JSON.stringify(result)).not.toMatch(/SQLITE|secret|path\.db|stack/);
      expect(result.errors?.[0].message).toBe('Unexpected error.');
    } finally {
      broken.getDelivery = original;
    }
  });

  it(`at most ${maxOperationsPerConnection} operations at once on one connection`, async () => {
    const { client } = connect();
    const open = Array.from({ length: maxOperationsPerConnection }, () => subscribe(client, watch, { channel: 'SMS' }));
    const ready = await execute(client, '{ viewer { name } }').catch((error) => error);
    expect(ready).toEqual([expect.objectContaining({ extensions: { code: 'RATE_LIMITED' } })]);
    open[0].unsubscribe();
    await eventually(async () => (await execute(client, '{ viewer { name } }').catch(() => undefined))?.data);
    for (const subscription of open) subscription.unsubscribe();
  });

  it('a message larger than BODY_LIMIT_BYTES closes the connection with 1009', async () => {
    const connection = connect();
    await execute(connection.client, '{ viewer { name } }');
    const big = subscribe(connection.client, `{ viewer { name } } # ${'x'.repeat(gateway.config.bodyLimitBytes)}`);
    await expect(big.done).rejects.toMatchObject({ code: 1009 });
  });

  it("a token revoked through the API: its connections are closed at once with 4403, others' stay", async () => {
    const created = await gateway.graphql(
      `mutation { createApiToken(input: { name: "ws-revoked", channels: [EMAIL], read: OWN }) { __typename ... on CreatedApiToken { token apiToken { id } } } }`,
    );
    const { token, apiToken } = created.body.data!.createApiToken;
    const doomed = connect({ 'OPS-Token': token });
    const kept = connect();
    const following = subscribe(doomed.client, watch, { channel: 'EMAIL' });
    const staying = subscribe(kept.client, watch, { channel: 'EMAIL' });
    await execute(doomed.client, '{ viewer { name } }');
    const revoked = await gateway.graphql(`mutation($id: ID!) { revokeApiToken(id: $id) { __typename } }`, { id: apiToken.id });
    expect(revoked.body.errors).toBeUndefined();
    expect(await doomed.closed).toEqual({ code: 4403, reason: 'Token revoked' });
    await expect(following.done).rejects.toMatchObject({ code: 4403 });
    expect(kept.closes).toEqual([]);
    staying.unsubscribe();
  });

  it('a token revoked elsewhere (another replica, the CLI): closed at the next check', async () => {
    await addToken('revoked-elsewhere', 'all');
    const connection = connect({ 'OPS-Token': tokens['revoked-elsewhere'] });
    subscribe(connection.client, watch, { channel: 'EMAIL' });
    await execute(connection.client, '{ viewer { name } }');
    const revokedAt = Date.now();
    expect(await gateway.store.revokeToken('tok_revoked-elsewhere', revokedAt)).toBe(true);
    expect(await connection.closed).toEqual({ code: 4403, reason: 'Token revoked' });
    // WEBSOCKET_TOKEN_RECHECK_MS is 200 here.
    expect(Date.now() - revokedAt).toBeLessThan(2000);
  });

  it('the upgrade from a page of another site is refused with 403; same-origin pages and API clients are not', async () => {
    const handshake = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const socket = new WebSocket(`${base.replace('http', 'ws')}/graphql`, 'graphql-transport-ws', { headers });
        socket.on('unexpected-response', (_request, response) => {
          resolve(response.statusCode ?? 0);
          socket.terminate();
        });
        socket.on('open', () => {
          resolve(101);
          socket.close();
        });
        socket.on('error', reject);
      });
    expect(await handshake({ origin: 'https://evil.example' })).toBe(403);
    expect(await handshake({ origin: base, 'sec-fetch-site': 'cross-site' })).toBe(403);
    expect(await handshake({ origin: base })).toBe(101);
    expect(await handshake({})).toBe(101);
    expect(await metric(/websocket_refused_total\{reason="cross_site"\} (\d+)/)).toBe(2);
  });

  it('shutting down closes every connection with 1001 (Going Away), so clients reconnect elsewhere', async () => {
    const other = await startGateway();
    try {
      const url = await other.listen();
      const connection = webSocketClient(url, { 'OPS-Token': testToken });
      await execute(connection.client, '{ viewer { name } }');
      await other.app.closeWebSockets();
      expect((await connection.closed).code).toBe(1001);
      await connection.dispose();
    } finally {
      await other.close();
    }
  });
});
