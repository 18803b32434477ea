import { ClientError, GraphQLClient } from 'graphql-request';
import { createClient, type Client, type ExecutionResult } from 'graphql-sse';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { ReadScope } from '../../src/auth';
import { graphqlLimits } from '../../src/graphql/yoga';
import { startSmtpSink, type SmtpSink } from '../peers/smtp-sink';
import { countDeliveries, describeOnStores, insertScopedToken, startGatewayOn, type AnyGateway } from '../support/db';
import { eventually, testToken } from '../support/gateway';

const sendEmail = `mutation($input: SendEmailInput!) {
  sendEmail(input: $input) {
    __typename
    ... on Delivery { id status }
    ... on Error { code message }
  }
}`;
const deliveryUpdated = `subscription($id: ID) { deliveryUpdated(id: $id) { id status } }`;

type Update = ExecutionResult<{ deliveryUpdated: { id: string; status: string } }>;

/** Every call of a client gives up after this long: a hang fails the test instead of stalling the run. */
const callTimeoutMs = 5_000;

describeOnStores(
  'third-party clients: graphql-request over HTTP, graphql-sse over server-sent events',
  (kind) => {
    let sink: SmtpSink;
    let gateway: AnyGateway;
    let url: string;
    const tokens = { own: 'token-read-own-0123456789', none: 'token-read-none-0123456789' } satisfies Partial<Record<ReadScope, string>>;
    let sseClients: Client[] = [];

    beforeAll(async () => {
      sink = await startSmtpSink();
      gateway = await startGatewayOn(kind, { env: { SMTP_URL: sink.url } });
      url = `${await gateway.listen()}/graphql`;
      for (const read of ['own', 'none'] as const) {
        await insertScopedToken(gateway, `read_${read}`, { channels: ['EMAIL'], read }, tokens[read]);
      }
    });
    afterEach(() => {
      for (const client of sseClients) client.dispose();
      sseClients = [];
    });
    afterAll(async () => {
      await gateway?.close();
      await sink?.close();
    });

    const httpClient = (token = testToken) => new GraphQLClient(url, { headers: { 'OPS-Token': token } });
    const request = <T = any>(client: GraphQLClient, document: string, variables: Record<string, unknown> = {}) =>
      client.request<T>({ document, variables, signal: AbortSignal.timeout(callTimeoutMs) });
    const send = async (subject: string, { token = testToken, wait = true } = {}) => {
      const { sendEmail: result } = await request(httpClient(token), sendEmail, {
        input: { to: ['ops@example.com'], subject, content: `${subject}, in plain text`, wait },
      });
      expect(result.__typename).toBe('Delivery');
      return result as { id: string; status: string };
    };

    /** A graphql-sse client in its default, distinct connections mode; one refused connection is not retried. */
    const sseClient = (token = testToken) => {
      const client = createClient({ url, headers: { 'OPS-Token': token }, retryAttempts: 0 });
      sseClients.push(client);
      return client;
    };
    /** Settles as `promise` does, or fails after callTimeoutMs. */
    const within = async <T>(promise: Promise<T>): Promise<T> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${callTimeoutMs} ms`)), callTimeoutMs);
      });
      try {
        return await Promise.race([promise, timeout]);
      } finally {
        clearTimeout(timer);
      }
    };
    /**
     * Subscribes and resolves once the gateway answered with the stream (it listens from then on), with a function
     * that reads the next result.
     */
    const subscribe = async (client: Client, variables: Record<string, unknown>) => {
      let connected!: () => void;
      const listening = new Promise<void>((resolve) => (connected = resolve));
      const results = client.iterate({ query: deliveryUpdated, variables }, { connected: () => connected() }) as AsyncIterableIterator<Update>;
      // The first read makes the connection, then waits for the first event.
      let pending: Promise<IteratorResult<Update>> | undefined = results.next();
      pending.catch(() => {});
      await within(Promise.race([listening, pending]));
      return () => {
        const step = pending ?? results.next();
        pending = undefined;
        return within(step);
      };
    };

    it('graphql-request: sendEmail, then delivery(id:) and deliveries(first:) show it SENT; the SMTP server got it', async () => {
      const client = httpClient();
      const subject = `third-party client on ${kind}`;
      const sent = await send(subject);
      expect(sent.status).toBe('SENT');

      const { delivery } = await request(client, `query($id: ID!) { delivery(id: $id) { id channel status recipient attempts } }`, { id: sent.id });
      expect(delivery).toEqual({ id: sent.id, channel: 'EMAIL', status: 'SENT', recipient: 'ops@example.com', attempts: 1 });

      const { deliveries } = await request(client, `{ deliveries(first: 5) { edges { node { id status } } pageInfo { hasNextPage } } }`);
      expect(deliveries.edges[0].node).toEqual({ id: sent.id, status: 'SENT' });

      const received = sink.messagesFor(sent.id);
      expect(received).toHaveLength(1);
      expect(received[0].parsed.subject).toBe(subject);
      expect(received[0].envelope.rcptTo).toEqual(['ops@example.com']);
    });

    it('graphql-request with a wrong token: a ClientError carrying the 401 and UNAUTHENTICATED', async () => {
      const error = await request(httpClient('wrong-token-0123456789'), `{ viewer { name } }`).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ClientError);
      const { response } = error as ClientError;
      expect(response.status).toBe(401);
      expect(response.errors?.[0].extensions).toMatchObject({ code: 'UNAUTHENTICATED' });
    });

    it(`graphql-request: a batch of ${graphqlLimits.maxAliases + 1} aliased sends is refused whole, and nothing is sent`, async () => {
      const rows = await countDeliveries(gateway);
      const messages = sink.messages.length;
      const sends = Array.from(
        { length: graphqlLimits.maxAliases + 1 },
        (_, n) => `s${n}: sendEmail(input: { to: ["ops@example.com"], subject: "flood ${n}", content: "x" }) { __typename }`,
      );
      const error = await request(httpClient(), `mutation { ${sends.join(' ')} }`).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ClientError);
      const { response } = error as ClientError;
      expect(response.status).toBe(400);
      expect(response.data ?? undefined).toBeUndefined();
      expect(response.errors).toEqual([
        expect.objectContaining({
          message: `Syntax Error: Aliases limit of ${graphqlLimits.maxAliases} exceeded, found ${graphqlLimits.maxAliases + 1}.`,
          extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
        }),
      ]);
      expect(await countDeliveries(gateway)).toBe(rows);
      const { deliveries } = await request(httpClient(), `{ deliveries(first: 100) { edges { node { id } } } }`);
      expect(deliveries.edges).toHaveLength(rows);
      expect(sink.messages.length).toBe(messages);
    });

    it('graphql-sse: deliveryUpdated by id shows QUEUED, SENDING and SENT, then completes', async () => {
      // Stopped, the dispatcher leaves the new delivery QUEUED until start().
      await gateway.app.stop(0);
      try {
        const { id, status } = await send('watched over graphql-sse', { wait: false });
        expect(status).toBe('QUEUED');
        const next = await subscribe(sseClient(), { id });
        const seen: Update[] = [];
        const first = await next();
        if (!first.done) seen.push(first.value);
        gateway.app.start();
        for (let step = await next(); !step.done; step = await next()) seen.push(step.value);
        expect(seen).toEqual(['QUEUED', 'SENDING', 'SENT'].map((status) => ({ data: { deliveryUpdated: { id, status } } })));
        expect(sink.messagesFor(id).map((message) => message.parsed.subject)).toEqual(['watched over graphql-sse']);
      } finally {
        gateway.app.start();
      }
    });

    it("graphql-sse with read 'own': another caller's delivery by id is NOT_FOUND", async () => {
      const { id } = await send('not the reader’s');
      const next = await subscribe(sseClient(tokens.own), { id });
      const answer = (await next()).value as Update;
      expect(answer.data ?? null).toBeNull();
      expect(answer.errors).toEqual([expect.objectContaining({ message: `No delivery ${id}`, extensions: { code: 'NOT_FOUND' } })]);
      expect((await next()).done).toBe(true);
    });

    it("graphql-sse with read 'none': FORBIDDEN", async () => {
      const next = await subscribe(sseClient(tokens.none), {});
      expect((await next()).value).toMatchObject({ errors: [{ message: 'This token may not read deliveries', extensions: { code: 'FORBIDDEN' } }] });
      expect((await next()).done).toBe(true);
    });

    it("graphql-sse with read 'own', without an id: its own deliveries' updates, none of another caller's", async () => {
      const next = await subscribe(sseClient(tokens.own), {});
      const others = await send('another caller’s');
      await eventually(async () => (await gateway.store.getDelivery(others.id))?.status === 'SENT');
      expect(sink.messagesFor(others.id)).toHaveLength(1);
      // Every update of the other caller's delivery was published before this one was created.
      const mine = await send('the reader’s own', { token: tokens.own, wait: false });

      const seen: { id: string; status: string }[] = [];
      while (seen.at(-1)?.status !== 'SENT') {
        const step = await next();
        if (step.done) break;
        seen.push(step.value.data!.deliveryUpdated);
      }
      expect(seen).toEqual(['QUEUED', 'SENDING', 'SENT'].map((status) => ({ id: mine.id, status })));
    });
  },
  { timeout: 20_000 },
);
