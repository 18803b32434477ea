import crypto from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { startDingTalkEmulator } from '../peers/ding-talk-emulator';
import { describeOnStores, startGatewayOn } from '../support/db';
import { eventually } from '../support/gateway';

// The whole gateway (config, GraphQL, dispatcher) on the real clock: ROBOT_DIGEST on by default and off on request.

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sendDing = `mutation($input: SendDingInput!) { sendDing(input: $input) { __typename ... on Delivery { id } ... on Error { message } } }`;
const deliveryQuery = `query($id: ID!) { node(id: $id) { ... on Delivery { id status digest { id status } foldedDeliveries { id } } } }`;

describeOnStores('ROBOT_DIGEST through the gateway', (kind) => {
  async function setUp(env: Record<string, string>) {
    const robot = { accessToken: crypto.randomBytes(32).toString('hex'), secret: `SEC${crypto.randomBytes(32).toString('hex')}` };
    const emulator = await startDingTalkEmulator({ robots: { [robot.accessToken]: robot.secret } });
    cleanups.push(() => emulator.close());
    const gateway = await startGatewayOn(kind, { env: { DINGTALK_BASE_URL: emulator.url, DISPATCH_CONCURRENCY: '4', ...env }, noDispatch: true });
    cleanups.push(() => gateway.close());
    const ids: string[] = [];
    for (let n = 0; n < 60; n++) {
      const { body } = await gateway.graphql(sendDing, { input: { ...robot, content: `alert ${n}`, wait: false, atMobiles: n === 30 ? ['13800000030'] : [] } });
      ids.push(body.data.sendDing.id);
    }
    gateway.app.start();
    return { robot, emulator, gateway, ids };
  }

  it('on by default: a backlog of 60 goes out in digests at once; Delivery.digest and foldedDeliveries say which carried what', async () => {
    const { emulator, gateway, ids } = await setUp({});
    const statuses = async () => Promise.all(ids.map(async (id) => (await gateway.store.getDelivery(id))!));
    const rows = await eventually(async () => {
      const all = await statuses();
      return all.every((row) => row.status === 'SENT') && all;
    }, 15_000);
    expect(emulator.messages.length).toBeLessThan(19);
    expect(emulator.rejected).toBe(0);
    const folded = rows.find((row) => row.digestId !== null && row.digestId !== row.id)!;
    const { body } = await gateway.graphql(deliveryQuery, { id: folded.id });
    expect(body.data.node).toMatchObject({ id: folded.id, status: 'SENT', digest: { id: folded.digestId, status: 'SENT' }, foldedDeliveries: [] });
    const carrier = (await gateway.graphql(deliveryQuery, { id: folded.digestId })).body.data.node;
    expect(carrier.digest.id).toBe(folded.digestId);
    expect(carrier.foldedDeliveries.map((each: { id: string }) => each.id)).toContain(folded.id);
    // Alert 30 @mentions a mobile: the digest that carried it carries the mention.
    const mentioned = emulator.messages.find((message) => message.body.msgtype === 'markdown' && /alert 30(?!\d)/.test(message.body.markdown.text))!;
    expect(mentioned.body.at.atMobiles).toContain('13800000030');
    expect(mentioned.body.markdown.text).toContain('@13800000030');
  }, 30_000);

  it('ROBOT_DIGEST=off keeps today: 19 go one by one, the rest wait for the next minute, nothing folded', async () => {
    const { emulator, gateway, ids } = await setUp({ ROBOT_DIGEST: 'off' });
    await eventually(() => emulator.messages.length >= 19 && gateway.app.dispatcher.inFlightCount === 0, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(emulator.messages).toHaveLength(19);
    const rows = await Promise.all(ids.map(async (id) => (await gateway.store.getDelivery(id))!));
    expect(rows.filter((row) => row.status === 'QUEUED')).toHaveLength(41);
    expect(rows.every((row) => row.digestId === null)).toBe(true);
    expect(emulator.messages.every((message) => message.body.msgtype === 'text')).toBe(true);
  }, 30_000);
});
