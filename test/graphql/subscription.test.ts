import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ReadScope } from '../../src/auth';
import { describeOnStores, insertScopedToken, startGatewayOn, type AnyGateway } from '../support/db';
import { eventually, testToken } from '../support/gateway';
import { sseReader } from '../support/sse';

const subscription = `subscription($id: ID, $channel: Channel) {
  deliveryUpdated(id: $id, channel: $channel) { id channel status attempts }
}`;

describeOnStores('deliveryUpdated over server-sent events', (kind) => {
  let gateway: AnyGateway;
  let base: string;

  const tokens: Record<string, string> = {};
  async function addToken(name: string, read: ReadScope) {
    tokens[name] = await insertScopedToken(gateway, name, { channels: ['DING', 'EMAIL', 'SMS'], read });
  }

  const subscribe = (variables: Record<string, unknown>, token: string | null = testToken, signal?: AbortSignal) =>
    fetch(`${base}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        ...(token === null ? {} : { 'OPS-Token': token }),
      },
      body: JSON.stringify({ query: subscription, variables }),
      signal,
    });

  const sendEmail = async (subject: string, token = testToken) => {
    const { body } = await gateway.graphql(
      `mutation($input: SendEmailInput!) { sendEmail(input: $input) { __typename ... on Delivery { id status } } }`,
      { input: { to: ['ops@example.com'], subject, content: 'body', wait: false } },
      { token },
    );
    expect(body.data?.sendEmail.__typename).toBe('Delivery');
    return body.data.sendEmail.id as string;
  };

  const listeners = () => (gateway.app.events as unknown as { emitter: import('node:events').EventEmitter }).emitter;

  beforeAll(async () => {
    gateway = await startGatewayOn(kind, { noDispatch: true, env: { DINGTALK_BASE_URL: 'http://127.0.0.1:9' } });
    base = await gateway.listen();
    await addToken('own-reader', 'own');
    await addToken('no-reader', 'none');
  });
  afterAll(() => gateway.close());

  it('by id: shows the delivery as it is (QUEUED), then SENDING and SENT in order, then ends', async () => {
    // Stopped, the dispatcher ignores the kick of a send: the delivery stays QUEUED until start().
    await gateway.app.stop(0);
    const id = await sendEmail('watched');
    const response = await subscribe({ id });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const next = sseReader(response);

    const statuses: string[] = [];
    const read = async () => {
      const event = await next();
      expect(event?.event).toBe('next');
      const payload = JSON.parse(event!.data);
      expect(payload.errors).toBeUndefined();
      expect(payload.data.deliveryUpdated).toMatchObject({ id, channel: 'EMAIL' });
      statuses.push(payload.data.deliveryUpdated.status);
      return payload.data.deliveryUpdated;
    };

    expect(await read()).toMatchObject({ status: 'QUEUED', attempts: 0 });
    gateway.app.start();
    expect(await read()).toMatchObject({ status: 'SENDING', attempts: 0 });
    expect(await read()).toMatchObject({ status: 'SENT', attempts: 1 });
    expect(await next()).toMatchObject({ event: 'complete' });
    expect(await next()).toBeUndefined();
    expect(statuses).toEqual(['QUEUED', 'SENDING', 'SENT']);
    expect((await gateway.store.getDelivery(id))?.status).toBe('SENT');
    const metrics = await (await gateway.fetch('/metrics')).text();
    expect(metrics).toMatch(/graphql_operations_total\{transport="sse",operation_type="subscription",operation="deliveryUpdated",outcome="success"\} [1-9]/);
  });

  it('by id, once final: the final state and the end of the stream', async () => {
    const id = await sendEmail('already done');
    await eventually(async () => (await gateway.store.getDelivery(id))?.status === 'SENT');
    const next = sseReader(await subscribe({ id }));
    const event = await next();
    expect(JSON.parse(event!.data).data.deliveryUpdated).toMatchObject({ id, status: 'SENT' });
    expect(await next()).toMatchObject({ event: 'complete' });
  });

  it('by channel: every change on that channel from now on, none of the others; leaving removes the listener', async () => {
    const before = listeners().listenerCount('*');
    const controller = new AbortController();
    const next = sseReader(await subscribe({ channel: 'EMAIL' }, testToken, controller.signal));
    await eventually(() => listeners().listenerCount('*') > before);

    // A robot that refuses connections: the DING delivery goes QUEUED, SENDING, RETRYING while the stream is open.
    const ding = await gateway.graphql(
      `mutation { sendDing(input: { accessToken: "at", secret: "SECx", content: "disk full", wait: false }) { __typename ... on Delivery { id } } }`,
    );
    expect(ding.body.data.sendDing.__typename).toBe('Delivery');
    await eventually(async () => ((await gateway.store.getDelivery(ding.body.data.sendDing.id))?.attempts ?? 0) > 0);
    const id = await sendEmail('by channel');

    const seen: string[] = [];
    while (seen.at(-1) !== 'SENT') {
      const event = await next();
      const delivery = JSON.parse(event!.data).data.deliveryUpdated;
      expect(delivery).toMatchObject({ id, channel: 'EMAIL' });
      seen.push(delivery.status);
    }
    expect(seen).toEqual(['QUEUED', 'SENDING', 'SENT']);

    controller.abort();
    await eventually(() => listeners().listenerCount('*') === before);
  });

  it("with read 'own': only the caller's own deliveries, by channel and by id", async () => {
    const controller = new AbortController();
    const next = sseReader(await subscribe({ channel: 'EMAIL' }, tokens['own-reader'], controller.signal));
    await sendEmail('not yours');
    const mine = await sendEmail('yours', tokens['own-reader']);
    await eventually(async () => (await gateway.store.getDelivery(mine))?.status === 'SENT');
    const seen: string[] = [];
    while (seen.at(-1) !== 'SENT') {
      const delivery = JSON.parse((await next())!.data).data.deliveryUpdated;
      expect(delivery.id).toBe(mine);
      seen.push(delivery.status);
    }
    expect(seen).toEqual(['QUEUED', 'SENDING', 'SENT']);
    controller.abort();

    const other = await sendEmail('still not yours');
    const refused = sseReader(await subscribe({ id: other }, tokens['own-reader']));
    const answer = JSON.parse((await refused())!.data);
    expect(answer.data ?? null).toBeNull();
    expect(answer.errors[0]).toMatchObject({ message: `No delivery ${other}`, extensions: { code: 'NOT_FOUND' } });
    // Sent before the next test opens its stream (its updates on EMAIL would show there).
    await eventually(async () => (await gateway.store.getDelivery(other))?.status === 'SENT');
  });

  it('ends the stream of a token revoked while it is open', async () => {
    await addToken('revoked-later', 'all');
    const next = sseReader(await subscribe({ channel: 'EMAIL' }, tokens['revoked-later']));
    const before = await sendEmail('seen before the revocation');
    // An earlier test's deliveries may still be finishing on EMAIL: the first update of this one is what counts.
    let first = JSON.parse((await next())!.data).data.deliveryUpdated;
    while (first.id !== before) first = JSON.parse((await next())!.data).data.deliveryUpdated;
    expect(first.id).toBe(before);
    await eventually(async () => (await gateway.store.getDelivery(before))?.status === 'SENT');
    expect(await gateway.store.revokeToken('revoked-later', Date.now())).toBe(true);
    const after = await sendEmail('sent after the revocation');
    await eventually(async () => (await gateway.store.getDelivery(after))?.status === 'SENT');
    const seen: string[] = [];
    for (let event = await next(); event; event = await next()) {
      if (event.data) seen.push(JSON.parse(event.data).data?.deliveryUpdated?.id);
    }
    expect(seen).not.toContain(after);
  });

  it("with read 'none': refused with FORBIDDEN", async () => {
    const next = sseReader(await subscribe({ channel: 'EMAIL' }, tokens['no-reader']));
    const answer = JSON.parse((await next())!.data);
    expect(answer.errors[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
    expect(await next()).toMatchObject({ event: 'complete' });
  });

  it('by channel, many deliveries at once: each shows QUEUED, SENDING and SENT, in that order, none dropped', async () => {
    // Updates of different deliveries interleave, and are not published in the order of their timestamps. A dispatcher
    // that polls every 10 ms also often claims a new delivery (on another connection, with PostgreSQL) between the
    // insert's commit and the moment the sending request hears of it.
    const busy = await startGatewayOn(kind, { env: { DISPATCH_POLL_MS: '10' } });
    const controller = new AbortController();
    try {
      const url = await busy.listen();
      const response = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'OPS-Token': testToken },
        body: JSON.stringify({ query: subscription, variables: { channel: 'EMAIL' } }),
        signal: controller.signal,
      });
      const next = sseReader(response);
      const ids: string[] = [];
      for (let n = 0; n < 100; n++) {
        const { body } = await busy.graphql(
          `mutation($input: SendEmailInput!) { sendEmail(input: $input) { ... on Delivery { id } } }`,
          { input: { to: ['ops@example.com'], content: `#${n}`, wait: false } },
        );
        ids.push(body.data.sendEmail.id);
        await new Promise((resolve) => setTimeout(resolve, n % 5));
      }
      for (const id of ids) await eventually(async () => (await busy.store.getDelivery(id))?.status === 'SENT');
      // Everything is sent: read what the stream showed (a stream that dropped an update would wait for it forever).
      const seen = new Map<string, string[]>(ids.map((id) => [id, []]));
      const unfinished = () => [...seen.values()].some((statuses) => statuses.at(-1) !== 'SENT');
      while (unfinished()) {
        const event = await Promise.race([next(), new Promise<undefined>((resolve) => setTimeout(resolve, 2000))]);
        if (!event) break;
        const delivery = JSON.parse(event.data).data.deliveryUpdated;
        seen.get(delivery.id)?.push(delivery.status);
      }
      const outOfOrder = [...seen].filter(([, statuses]) => statuses.join() !== 'QUEUED,SENDING,SENT');
      expect(outOfOrder).toEqual([]);
    } finally {
      controller.abort();
      await busy.close();
    }
  });

  it('without a token, or with a wrong one: 401 and no stream', async () => {
    for (const token of [null, 'wrong-token']) {
      const response = await subscribe({ channel: 'EMAIL' }, token);
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
    }
  });

  it('also over GET with the operation in the query string', async () => {
    const id = await sendEmail('get');
    await eventually(async () => (await gateway.store.getDelivery(id))?.status === 'SENT');
    const url = new URL(`${base}/graphql`);
    url.searchParams.set('query', subscription);
    url.searchParams.set('variables', JSON.stringify({ id }));
    const response = await fetch(url, { headers: { accept: 'text/event-stream', 'OPS-Token': testToken } });
    expect(response.status).toBe(200);
    const next = sseReader(response);
    expect(JSON.parse((await next())!.data).data.deliveryUpdated).toMatchObject({ id, status: 'SENT' });
  });
});
