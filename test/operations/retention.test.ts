import { afterEach, describe, expect, it } from 'vitest';
import type { NewDeliveryRow } from '../../src/db/schema';
import type { Store } from '../../src/db/store';
import { Retention } from '../../src/operations/retention';
import { createLogger } from '../../src/logger';
import { countDeliveries, describeOnStores, insertBareDeliveries, startGatewayOn, storeUnavailable, type AnyGateway } from '../support/db';
import { startGateway } from '../support/gateway';
import { deliveryRow } from '../support/stores';

const dayMs = 86_400_000;
const quiet = createLogger({ level: 'silent', pretty: false });

async function insert(store: Store, overrides: Partial<NewDeliveryRow>): Promise<string> {
  const outcome = await store.insertDelivery(deliveryRow(overrides));
  if (outcome.kind !== 'created') throw new Error(outcome.kind);
  return outcome.delivery.id;
}

const listed = `{ deliveries(first: 100) { edges { node { id status redactedAt attemptLog { number } } } } }`;

describeOnStores('retention pass', (kind) => {
  let gateways: AnyGateway[] = [];
  afterEach(async () => {
    for (const gateway of gateways.reverse()) await gateway.close();
    gateways = [];
  });

  it('deletes old final deliveries with their attempts, redacts older content, leaves pending and newer ones; the API agrees', async () => {
    const gateway = await startGatewayOn(kind, { noDispatch: true });
    gateways.push(gateway);
    const { store } = gateway;
    const now = Date.now();
    const content = { payload: JSON.stringify({ to: ['ops@example.com'], subject: 'disk full', text: 'db-3 at 97%' }) };
    const expired = await Promise.all(
      (['SENT', 'SENT', 'FAILED', 'CANCELLED'] as const).map((status, n) => insert(store, { ...content, status, createdAt: now - 100 * dayMs + n })),
    );
    for (const id of expired.slice(0, 2)) {
      await store.finishAttempt(id, { number: 1, startedAt: now - 100 * dayMs, durationMs: 5, outcome: 'SENT', providerCode: null, providerMessage: null }, {});
    }
    const oldPending = await Promise.all(
      (['QUEUED', 'RETRYING'] as const).map((status) => insert(store, { ...content, status, createdAt: now - 100 * dayMs, nextAttemptAt: now + dayMs })),
    );
    const aged = await insert(store, { ...content, status: 'SENT', createdAt: now - 10 * dayMs });
    const fresh = await insert(store, { ...content, status: 'SENT', createdAt: now - dayMs });

    expect(await gateway.app.retention.runPass()).toMatchObject({ ran: true, purged: 4, redacted: 1 });

    const { body } = await gateway.graphql(listed);
    const nodes = new Map(body.data.deliveries.edges.map(({ node }: any) => [node.id, node]));
    expect([...nodes.keys()].sort()).toEqual([...oldPending, aged, fresh].sort());
    expect(await Promise.all(expired.map((id) => store.listAttempts(id)))).toEqual(expired.map(() => []));
    expect((nodes.get(aged) as any).redactedAt).toBe(new Date((await store.getDelivery(aged))!.contentRedactedAt!).toISOString());
    for (const id of [fresh, ...oldPending]) expect((nodes.get(id) as any).redactedAt).toBeNull();
    expect((await store.getDelivery(fresh))!.payload).toBe(content.payload);
    expect((await store.getDelivery(oldPending[0]))!.payload).toBe(content.payload);

    // The dashboard counts what the list shows.
    const stats = await gateway.graphql(`query($from: DateTime!, $to: DateTime!) { deliveryStats(from: $from, to: $to, bucket: DAY) { buckets { total } } }`, {
      from: new Date(now - 120 * dayMs).toISOString(),
      to: new Date(now + dayMs).toISOString(),
    });
    const total = stats.body.data.deliveryStats.buckets.reduce((sum: number, bucket: { total: number }) => sum + bucket.total, 0);
    expect(total).toBe(nodes.size);

    const metrics = await (await gateway.fetch('/metrics', { headers: { 'OPS-Token': 'test-token-0123456789' } })).text();
    expect(metrics).toMatch(/^notify_gateway_deliveries_purged_total 4$/m);
    expect(metrics).toMatch(/^notify_gateway_deliveries_redacted_total 1$/m);
    expect(gateway.logs).toContainEqual(expect.objectContaining({ component: 'retention', msg: 'retention pass finished', purged: 4, redacted: 1 }));
    // A second pass finds nothing left to do.
    expect(await gateway.app.retention.runPass()).toMatchObject({ ran: true, purged: 0, redacted: 0 });
  });
});

describe.skipIf(storeUnavailable('postgres'))('retention pass on replicas [postgres]', () => {
  it('two replicas purging at once delete each row once and both finish', async () => {
    const first = await startGatewayOn('postgres', { noDispatch: true });
    const second = await startGateway({ store: first.database!, noDispatch: true });
    try {
      const old = Date.now() - 100 * dayMs;
      const rows = Array.from({ length: 1200 }, (_, n) => ({ id: `dlv_old${String(n).padStart(6, '0')}`, channel: 'EMAIL' as const, status: 'SENT' as const, createdAt: old + n }));
      await insertBareDeliveries(first, rows);
      const config = { retention: { deliveryDays: 90, contentDays: 7 } };
      const passes = [first, second].map((gateway) => new Retention({ store: gateway.store, config, logger: quiet, batch: 50 }));
      const reports = await Promise.all(passes.map((pass) => pass.runPass()));
      expect(reports.reduce((sum, report) => sum + report.purged, 0)).toBe(1200);
      expect(reports.some((report) => report.ran)).toBe(true);
      expect(await countDeliveries(first)).toBe(0);
    } finally {
      await second.close();
      await first.close();
    }
  });
});

describe('retention pass [sqlite]', () => {
  it('gives the freed pages back to the file system', async () => {
    const gateway = await startGateway({ noDispatch: true });
    try {
      const client = gateway.store.db.$client;
      expect(client.pragma('auto_vacuum', { simple: true })).toBe(2);
      const old = Date.now() - 100 * dayMs;
      await insertBareDeliveries(gateway, Array.from({ length: 3000 }, (_, n) => ({ id: `dlv_old${n}`, channel: 'EMAIL' as const, status: 'SENT' as const, createdAt: old + n })));
      client.prepare("update deliveries set payload = json_object('text', printf('%.2000c', 'x'))").run();
      const before = client.pragma('page_count', { simple: true }) as number;
      expect(await gateway.app.retention.runPass()).toMatchObject({ purged: 3000 });
      expect(client.pragma('freelist_count', { simple: true })).toBe(0);
      expect(client.pragma('page_count', { simple: true })).toBeLessThan(before / 10);
    } finally {
      await gateway.close();
    }
  });
});

describe('retention batch sizing', () => {
  it("sizes batches by their own transaction's time, not the trip to it, and rests ten times the whole step", async () => {
    let left = 20_000;
    let clock = 0;
    const limits: number[] = [];
    const pauses: number[] = [];
    const stepTimes: number[] = [];
    const store = {
      exclusively: async <T>(_name: string, work: () => Promise<T>) => work(),
      // The transaction costs 0.1 ms a row while the first 2,000 go (a loaded machine: 200 rows take 20 ms), then
      // 0.0005 ms (an idle one); every step also spends 20 ms waiting and travelling, as on a busy event loop.
      purgeFinal: async (_before: number, limit: number) => {
        limits.push(limit);
        const done = Math.min(limit, left);
        left -= done;
        const transactionMs = done * (left + done > 18_000 ? 0.1 : 0.0005);
        clock += 20 + transactionMs;
        stepTimes.push(20 + transactionMs);
        return { count: done, transactionMs };
      },
      redactContent: async () => ({ count: 0, transactionMs: 0 }),
      reclaimSpace: async () => ({ count: 0, transactionMs: 0 }),
    } as unknown as Store;
    const config = { retention: { deliveryDays: 90, contentDays: 7 } };
    const pause = async (ms: number) => void pauses.push(ms);
    const report = await new Retention({ store, config, logger: quiet, clock: () => clock, pause }).runPass();
    expect(report.purged).toBe(20_000);
    // Halved while a transaction takes over 3 ms, kept from 1.5 to 3 ms (25 rows), doubled once transactions take
    // under 1.5 ms, up to 2,000, though every step took over 20 ms in all.
    expect(limits.slice(0, 6)).toEqual([200, 100, 50, 25, 25, 25]);
    expect(Math.max(...limits)).toBe(2000);
    expect(limits.every((limit, n) => n === 0 || limit === limits[n - 1] || limit === Math.min(2000, limits[n - 1] * 2) || limit * 2 === limits[n - 1])).toBe(true);
    // A rest after every full batch (not after the last, short one), ten times the step as the caller saw it.
    expect(pauses).toHaveLength(stepTimes.length - 1);
    pauses.forEach((ms, n) => expect(ms).toBeCloseTo(stepTimes[n]! * 10, 6));
  });

  it('rests once the step while no caller is served, and ten times again from the step after a caller comes back', async () => {
    let left = 1000;
    const calls: string[] = [];
    let callersAway = true;
    const store = {
      exclusively: async <T>(_name: string, work: () => Promise<T>) => work(),
      purgeFinal: async (_before: number, limit: number) => {
        const done = Math.min(limit, left);
        left -= done;
        calls.push('step');
        return { count: done, transactionMs: 2 };
      },
      redactContent: async () => ({ count: 0, transactionMs: 0 }),
      reclaimSpace: async () => ({ count: 0, transactionMs: 0 }),
    } as unknown as Store;
    let clock = 0;
    const pauses: number[] = [];
    const activity = { quietFor: (ms: number) => (expect(ms).toBe(5000), callersAway) };
    const pause = async (ms: number) => {
      pauses.push(ms);
      // A caller arrives during the third rest.
      if (pauses.length === 3) callersAway = false;
    };
    const config = { retention: { deliveryDays: 90, contentDays: 7 } };
    await new Retention({ store, config, logger: quiet, clock: () => (clock += 2), pause, batch: 100, activity }).runPass();
    expect(calls).toHaveLength(11);
    // Each step takes 2 ms on this clock: 2 ms rests while quiet, 20 ms once a caller was served.
    expect(pauses).toEqual([2, 2, 2, 20, 20, 20, 20, 20, 20, 20]);
  });
});
