import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hashToken } from '../../src/auth';
import type { ChannelName, DeliveryStatus } from '../../src/db/schema';
import type { SqliteStore } from '../../src/db/sqlite-store';
import { describeOnStores, groupedDeliveryCounts, insertBareDeliveries, startGatewayOn, type AnyGateway, type BareDelivery } from '../support/db';

const statsQuery = `query($from: DateTime!, $to: DateTime!, $bucket: StatsBucket, $channel: Channel) {
  deliveryStats(from: $from, to: $to, bucket: $bucket, channel: $channel) {
    from to bucket total
    totals { channel status count }
    buckets { start total counts { channel status count } }
  }
}`;

const at = (iso: string) => Date.parse(iso);
let serial = 0;

describeOnStores('deliveryStats', (kind) => {
  let gateway: AnyGateway;
  const ownToken = 'own-reader-token-0123456789';
  const noneToken = 'no-reader-token-0123456789';

  async function record(createdAt: string, channel: ChannelName, status: DeliveryStatus, callerId = 'env:1') {
    serial += 1;
    const time = at(createdAt);
    await gateway.store.insertDelivery({
      id: `dlv_${time.toString(16).padStart(12, '0')}${serial.toString(16).padStart(16, '0')}`,
      channel,
      status,
      provider: channel === 'EMAIL' ? 'smtp' : channel === 'SMS' ? 'log' : 'dingtalk',
      recipient: 'r',
      payload: '{}',
      callerId,
      createdAt: time,
      updatedAt: time,
    });
  }

  const stats = async (variables: Record<string, unknown>, token?: string) => {
    const { status, body } = await gateway.graphql(statsQuery, variables, token ? { token } : undefined);
    expect(status).toBe(200);
    return body;
  };

  beforeAll(async () => {
    gateway = await startGatewayOn(kind, { noDispatch: true });
    await gateway.app.stop(0);
    for (const [name, read] of [
      ['own-reader', 'own'],
      ['no-reader', 'none'],
    ] as const) {
      await gateway.store.insertToken({
        id: `tok_${name}`,
        name,
        tokenHash: hashToken(name === 'own-reader' ? ownToken : noneToken),
        scopes: JSON.stringify({ channels: ['DING', 'EMAIL', 'SMS'], read }),
        createdAt: Date.now(),
        revokedAt: null,
        lastUsedAt: null,
      });
    }
    await record('2025-12-31T23:59:59.999Z', 'EMAIL', 'SENT'); // before the window
    await record('2026-01-01T00:10:00.000Z', 'EMAIL', 'SENT');
    await record('2026-01-01T00:10:30.000Z', 'EMAIL', 'SENT');
    await record('2026-01-01T00:59:59.999Z', 'SMS', 'FAILED');
    await record('2026-01-01T01:00:00.000Z', 'EMAIL', 'SENT', 'tok_own-reader');
    await record('2026-01-01T01:30:00.000Z', 'EMAIL', 'FAILED');
    await record('2026-01-01T02:30:00.000Z', 'DING', 'QUEUED', 'tok_own-reader');
    await record('2026-01-01T03:00:00.000Z', 'EMAIL', 'SENT'); // at `to`: outside
    await record('2026-01-02T12:00:00.000Z', 'SMS', 'SENT');
  });
  afterAll(() => gateway.close());

  it('counts by hour bucket, channel and status over [from, to), with totals and empty buckets included', async () => {
    const body = await stats({ from: '2026-01-01T00:00:00Z', to: '2026-01-01T03:00:00Z', bucket: 'HOUR' });
    expect(body.errors).toBeUndefined();
    expect(body.data.deliveryStats).toEqual({
      from: '2026-01-01T00:00:00.000Z',
      to: '2026-01-01T03:00:00.000Z',
      bucket: 'HOUR',
      total: 6,
      totals: [
        { channel: 'DING', status: 'QUEUED', count: 1 },
        { channel: 'EMAIL', status: 'FAILED', count: 1 },
        { channel: 'EMAIL', status: 'SENT', count: 3 },
        { channel: 'SMS', status: 'FAILED', count: 1 },
      ],
      buckets: [
        {
          start: '2026-01-01T00:00:00.000Z',
          total: 3,
          counts: [
            { channel: 'EMAIL', status: 'SENT', count: 2 },
            { channel: 'SMS', status: 'FAILED', count: 1 },
          ],
        },
        {
          start: '2026-01-01T01:00:00.000Z',
          total: 2,
          counts: [
            { channel: 'EMAIL', status: 'FAILED', count: 1 },
            { channel: 'EMAIL', status: 'SENT', count: 1 },
          ],
        },
        { start: '2026-01-01T02:00:00.000Z', total: 1, counts: [{ channel: 'DING', status: 'QUEUED', count: 1 }] },
      ],
    });
  });

  it('filters by channel', async () => {
    const body = await stats({ from: '2026-01-01T00:00:00Z', to: '2026-01-01T03:00:00Z', bucket: 'HOUR', channel: 'EMAIL' });
    const result = body.data.deliveryStats;
    expect(result.total).toBe(4);
    expect(result.buckets.map((bucket: { total: number }) => bucket.total)).toEqual([2, 2, 0]);
    expect(result.totals.every((row: { channel: string }) => row.channel === 'EMAIL')).toBe(true);
  });

  it('aligns minute buckets on the minute, starting with the one that holds `from`', async () => {
    const body = await stats({ from: '2026-01-01T00:10:15Z', to: '2026-01-01T00:12:00Z', bucket: 'MINUTE' });
    const result = body.data.deliveryStats;
    expect(result.buckets.map((bucket: { start: string }) => bucket.start)).toEqual([
      '2026-01-01T00:10:00.000Z',
      '2026-01-01T00:11:00.000Z',
    ]);
    // The delivery at 00:10:00 is before `from`; the one at 00:10:30 is in.
    expect(result.buckets[0].counts).toEqual([{ channel: 'EMAIL', status: 'SENT', count: 1 }]);
    expect(result.total).toBe(1);
  });

  it('counts by UTC day; the default bucket is HOUR', async () => {
    const days = await stats({ from: '2025-12-31T00:00:00Z', to: '2026-01-03T00:00:00Z', bucket: 'DAY' });
    expect(days.data.deliveryStats.buckets.map((bucket: { total: number }) => bucket.total)).toEqual([1, 7, 1]);
    const hours = await stats({ from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z' });
    expect(hours.data.deliveryStats.bucket).toBe('HOUR');
    expect(hours.data.deliveryStats.buckets).toHaveLength(24);
  });

  it("counts only the caller's own deliveries for a token with read 'own', and refuses read 'none'", async () => {
    const own = await stats({ from: '2026-01-01T00:00:00Z', to: '2026-01-01T03:00:00Z' }, ownToken);
    expect(own.data.deliveryStats.totals).toEqual([
      { channel: 'DING', status: 'QUEUED', count: 1 },
      { channel: 'EMAIL', status: 'SENT', count: 1 },
    ]);
    const none = await stats({ from: '2026-01-01T00:00:00Z', to: '2026-01-01T03:00:00Z' }, noneToken);
    expect(none.data).toBeNull();
    expect(none.errors![0].extensions?.code).toBe('FORBIDDEN');
  });

  it('refuses a window that is empty, reversed or over 1000 buckets, with a clear error', async () => {
    const reversed = await stats({ from: '2026-01-01T03:00:00Z', to: '2026-01-01T00:00:00Z' });
    expect(reversed.errors![0]).toMatchObject({
      message: '`to` must be later than `from`',
      extensions: { code: 'INVALID_ARGUMENT' },
    });
    const empty = await stats({ from: '2026-01-01T03:00:00Z', to: '2026-01-01T03:00:00Z' });
    expect(empty.errors![0].extensions?.code).toBe('INVALID_ARGUMENT');

    const tooMany = await stats({ from: '2026-01-01T00:00:00Z', to: '2026-01-01T16:40:01Z', bucket: 'MINUTE' });
    expect(tooMany.data).toBeNull();
    expect(tooMany.errors![0]).toMatchObject({
      message: 'The window spans 1001 minute buckets; at most 1000 are allowed: narrow it or use a wider bucket',
      extensions: { code: 'INVALID_ARGUMENT' },
    });
    const justRight = await stats({ from: '2026-01-01T00:00:00Z', to: '2026-01-01T16:40:00Z', bucket: 'MINUTE' });
    expect(justRight.errors).toBeUndefined();
    expect(justRight.data.deliveryStats.buckets).toHaveLength(1000);
    expect(justRight.data.deliveryStats.total).toBe(7);
  });

  it('needs a token like every other operation', async () => {
    const { status } = await gateway.graphql(statsQuery, { from: '2026-01-01T00:00:00Z', to: '2026-01-01T03:00:00Z' }, { token: null });
    expect(status).toBe(401);
  });

  it('counts slice by slice exactly as one GROUP BY over the window would, for any window and bucket width', async () => {
    const base = at('2026-03-01T00:00:00Z');
    const day = 86_400_000;
    const rows: BareDelivery[] = [];
    for (let n = 0; n < 300; n += 1) {
      const created = base + Math.floor((((n * 7919) % 1000) / 1000) * 3 * day) + n;
      rows.push({ id: `dlv_fc${n}`, channel: (['DING', 'EMAIL', 'SMS'] as const)[n % 3], status: n % 4 === 0 ? 'FAILED' : 'SENT', createdAt: created });
    }
    await insertBareDeliveries(gateway, rows);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: -day, max: 4 * day }),
        fc.integer({ min: 1, max: 3 * day }),
        fc.constantFrom(60_000, 3_600_000, 86_400_000, 7_000_000),
        async (offset, length, bucketMs) => {
          const from = base + offset;
          const to = from + length;
          const expected = await groupedDeliveryCounts(gateway, from, to, bucketMs);
          expect(await gateway.store.deliveryStats({ from, to, bucketMs })).toEqual(expected);
        },
      ),
      { numRuns: 40 },
    );
  });

  // SQLite's plans. PostgreSQL's depend on its statistics: nine rows are read with a scan whatever the indexes (the
  // deliveries list is checked on a big table in test/db/postgres-query-plan.test.ts).
  if (kind === 'sqlite') {
    it('reads through an index, not a scan of the table', () => {
      const client = (gateway.store as SqliteStore).db.$client;
      const plan = (sql: string) =>
        (client.prepare(`explain query plan ${sql}`).all() as { detail: string }[]).map((row) => row.detail).join('\n');
      const window = 'created_at >= 1 and created_at < 2';
      for (const where of [window, `${window} and channel = 'EMAIL'`, `${window} and caller_id = 'x'`]) {
        const detail = plan(`select channel, status, count(*) from deliveries where ${where} group by channel, status`);
        expect(detail).toMatch(/USING (COVERING )?INDEX/);
        expect(detail).not.toMatch(/SCAN deliveries(?! USING)/);
      }
      expect(plan(`select channel, count(*) from deliveries where status in ('QUEUED', 'RETRYING', 'SENDING') group by channel`)).toMatch(
        /USING (COVERING )?INDEX deliveries_status_created_idx/,
      );
    });
  }
});
