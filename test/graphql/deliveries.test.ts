import { afterAll, beforeAll, expect, it } from 'vitest';
import { channels, deliveryStatuses, type DeliveryRow, type NewDeliveryRow } from '../../src/db/schema';
import { newDeliveryId } from '../../src/delivery/service';
import { describeOnStores, startGatewayOn, type AnyGateway } from '../support/db';

const base = Date.UTC(2025, 0, 6, 8, 0, 0);
const total = 163;

/**
 * Deterministic rows: created over about two hours, three at a time sharing the same millisecond (so the id alone
 * orders them), with every channel, status and a handful of recipients, inserted out of order.
 */
function sampleDeliveries(count = total, start = base): NewDeliveryRow[] {
  const rows: NewDeliveryRow[] = [];
  for (let i = 0; i < count; i++) {
    const channel = channels[i % 3];
    const createdAt = start + Math.floor(i / 3) * 137_000;
    const recipient =
      channel === 'EMAIL' ? `user${i % 4}@example.com` : channel === 'SMS' ? `+86138001380${i % 5}0` : `robot:00000000000${i % 2}`;
    rows.push({
      id: newDeliveryId(createdAt),
      channel,
      status: deliveryStatuses[(i * 7) % deliveryStatuses.length],
      provider: 'test',
      recipient,
      payload: '{}',
      callerId: 'env:1',
      createdAt,
      updatedAt: createdAt,
    });
  }
  // Insertion order must not be what the answer relies on.
  return rows.map((row, i) => ({ row, key: (i * 71) % count })).sort((a, b) => a.key - b.key).map(({ row }) => row);
}

const newestFirst = (a: Pick<DeliveryRow, 'createdAt' | 'id'>, b: Pick<DeliveryRow, 'createdAt' | 'id'>) =>
  b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

const listQuery = `query List(
  $first: Int, $after: String, $last: Int, $before: String,
  $channel: Channel, $status: DeliveryStatus, $recipient: String, $createdAfter: DateTime, $createdBefore: DateTime
) {
  deliveries(
    first: $first, after: $after, last: $last, before: $before,
    channel: $channel, status: $status, recipient: $recipient, createdAfter: $createdAfter, createdBefore: $createdBefore
  ) {
    edges { cursor node { id channel status recipient createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

interface Page {
  edges: { cursor: string; node: { id: string; channel: string; status: string; recipient: string; createdAt: string } }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

describeOnStores('deliveries: a keyset Relay connection, newest first', (kind) => {
  let gateway: AnyGateway;
  let rows: NewDeliveryRow[];
  let expected: string[];

  const page = async (variables: Record<string, unknown>): Promise<Page> => {
    const { status, body } = await gateway.graphql(listQuery, variables);
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    return body.data.deliveries;
  };

  /** Walks every page forward and checks pageInfo on the way. */
  const walkForward = async (filter: Record<string, unknown>, size: number) => {
    const ids: string[] = [];
    let after: string | undefined;
    for (let n = 0; ; n++) {
      const current = await page({ ...filter, first: size, after });
      expect(current.edges.length).toBeLessThanOrEqual(size);
      expect(current.pageInfo.hasPreviousPage).toBe(n > 0);
      ids.push(...current.edges.map((edge) => edge.node.id));
      if (current.edges.length > 0) {
        expect(current.pageInfo.startCursor).toBe(current.edges[0].cursor);
        expect(current.pageInfo.endCursor).toBe(current.edges.at(-1)!.cursor);
      }
      if (!current.pageInfo.hasNextPage) break;
      expect(current.edges).toHaveLength(size);
      after = current.pageInfo.endCursor!;
      expect(n).toBeLessThan(200);
    }
    return ids;
  };

  /** Walks every page backward from the oldest and returns the ids newest first. */
  const walkBackward = async (filter: Record<string, unknown>, size: number) => {
    const ids: string[] = [];
    let before: string | undefined;
    for (let n = 0; ; n++) {
      const current = await page({ ...filter, last: size, before });
      expect(current.pageInfo.hasNextPage).toBe(n > 0);
      ids.unshift(...current.edges.map((edge) => edge.node.id));
      if (!current.pageInfo.hasPreviousPage) break;
      expect(current.edges).toHaveLength(size);
      before = current.pageInfo.startCursor!;
      expect(n).toBeLessThan(200);
    }
    return ids;
  };

  beforeAll(async () => {
    gateway = await startGatewayOn(kind, { noDispatch: true });
    rows = sampleDeliveries();
    for (const row of rows) expect((await gateway.store.insertDelivery(row)).kind).toBe('created');
    expected = [...rows].sort(newestFirst).map((row) => row.id);
  });
  afterAll(() => gateway.close());

  it('has rows sharing a createdAt whose ids are not in insertion order', () => {
    const sharing = rows.filter((row) => rows.some((other) => other !== row && other.createdAt === row.createdAt));
    expect(sharing.length).toBeGreaterThan(100);
    expect(rows.map((row) => row.id)).not.toEqual(expected);
    expect([...rows].reverse().map((row) => row.id)).not.toEqual(expected);
  });

  it('walks all rows forward with first/after, each exactly once, newest first', async () => {
    const ids = await walkForward({}, 7);
    expect(ids).toHaveLength(total);
    expect(new Set(ids).size).toBe(total);
    expect(ids).toEqual(expected);
  });

  it('walks all rows backward with last/before, each exactly once, newest first', async () => {
    const ids = await walkBackward({}, 9);
    expect(ids).toHaveLength(total);
    expect(new Set(ids).size).toBe(total);
    expect(ids).toEqual(expected);
  });

  it('answers a newest-first page of 20 by default, with nothing before it', async () => {
    const first = await page({});
    expect(first.edges.map((edge) => edge.node.id)).toEqual(expected.slice(0, 20));
    expect(first.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    const dates = first.edges.map((edge) => edge.node.createdAt);
    expect(dates).toEqual([...dates].sort().reverse());
    expect(dates[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('knows both ends: the oldest page has no next page, the newest no previous page', async () => {
    const oldest = await page({ last: 5 });
    expect(oldest.edges.map((edge) => edge.node.id)).toEqual(expected.slice(-5));
    expect(oldest.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });

    const newest = await page({ last: 5, before: (await page({ first: 6 })).edges[5].cursor });
    expect(newest.edges.map((edge) => edge.node.id)).toEqual(expected.slice(0, 5));
    expect(newest.pageInfo.hasPreviousPage).toBe(false);

    const tail = await page({ first: 10, after: (await page({ last: 4 })).pageInfo.startCursor });
    expect(tail.edges.map((edge) => edge.node.id)).toEqual(expected.slice(-3));
    expect(tail.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
  });

  it('steps back from a middle cursor to exactly the rows before it', async () => {
    const middle = await page({ first: 50 });
    const back = await page({ last: 10, before: middle.pageInfo.endCursor });
    expect(back.edges.map((edge) => edge.node.id)).toEqual(expected.slice(39, 49));
    expect(back.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
  });

  it('caps first and last at 100 a page (the rest is reached with the cursor)', async () => {
    const big = await page({ first: 500 });
    expect(big.edges).toHaveLength(100);
    expect(big.edges.map((edge) => edge.node.id)).toEqual(expected.slice(0, 100));
    expect(big.pageInfo.hasNextPage).toBe(true);
    const rest = await page({ first: 500, after: big.pageInfo.endCursor });
    expect(rest.edges.map((edge) => edge.node.id)).toEqual(expected.slice(100));
    expect(rest.pageInfo.hasNextPage).toBe(false);
    expect((await page({ last: 1000 })).edges.map((edge) => edge.node.id)).toEqual(expected.slice(-100));
  });

  it('refuses a negative page size', async () => {
    const { body } = await gateway.graphql(listQuery, { first: -1 });
    expect(body.data).toBeNull();
    expect(body.errors![0].message).toMatch(/first.*non-negative/);
  });

  it.each([
    ['garbage', 'not a cursor'],
    ['base64 of something else', Buffer.from('12:abc').toString('base64url')],
    ['an offset cursor', Buffer.from('OffsetConnection:10').toString('base64')],
  ])('refuses an invalid cursor (%s) with a clear error', async (_label, cursor) => {
    for (const variables of [{ first: 5, after: cursor }, { last: 5, before: cursor }]) {
      const { status, body } = await gateway.graphql(listQuery, variables);
      expect(status).toBe(200);
      expect(body.data).toBeNull();
      expect(body.errors).toHaveLength(1);
      expect(body.errors![0].message).toBe('Invalid cursor');
      expect(body.errors![0].extensions?.code).toBe('BAD_USER_INPUT');
    }
  });

  const iso = (ms: number) => new Date(ms).toISOString();
  // Bounds that fall on a shared createdAt prove both are exclusive.
  const after = base + 10 * 137_000;
  const before = base + 40 * 137_000;
  const filters: [string, Record<string, unknown>, (row: NewDeliveryRow) => boolean][] = [
    ['channel', { channel: 'SMS' }, (row) => row.channel === 'SMS'],
    ['status', { status: 'FAILED' }, (row) => row.status === 'FAILED'],
    ['status CANCELLED', { status: 'CANCELLED' }, (row) => row.status === 'CANCELLED'],
    ['recipient', { recipient: 'user1@example.com' }, (row) => row.recipient === 'user1@example.com'],
    ['createdAfter (exclusive)', { createdAfter: iso(after) }, (row) => row.createdAt > after],
    ['createdBefore (exclusive)', { createdBefore: iso(before) }, (row) => row.createdAt < before],
    [
      'channel, status and a time window together',
      { channel: 'EMAIL', status: 'FAILED', createdAfter: iso(after), createdBefore: iso(before + 20 * 137_000) },
      (row) => row.channel === 'EMAIL' && row.status === 'FAILED' && row.createdAt > after && row.createdAt < before + 20 * 137_000,
    ],
    [
      'recipient with channel and createdBefore',
      { recipient: '+8613800138020', channel: 'SMS', createdBefore: iso(before) },
      (row) => row.recipient === '+8613800138020' && row.channel === 'SMS' && row.createdAt < before,
    ],
    ['a filter nothing matches', { recipient: 'nobody@example.com' }, () => false],
  ];

  it.each(filters)('filters by %s: exactly the matching rows, in both directions', async (_label, filter, matches) => {
    const want = rows.filter(matches).sort(newestFirst).map((row) => row.id);
    if (_label !== 'a filter nothing matches') expect(want.length).toBeGreaterThan(3);
    expect(await walkForward(filter, 4)).toEqual(want);
    expect(await walkBackward(filter, 5)).toEqual(want);
  });

  it('answers delivery(id) and node(id), and null for an id it does not know', async () => {
    const row = rows[17];
    const one = `query($id: ID!) {
      delivery(id: $id) { id channel status recipient createdAt }
      node(id: $id) { __typename id ... on Delivery { recipient } }
    }`;
    const { body } = await gateway.graphql(one, { id: row.id });
    expect(body.errors).toBeUndefined();
    expect(body.data.delivery).toEqual({
      id: row.id,
      channel: row.channel,
      status: row.status,
      recipient: row.recipient,
      createdAt: new Date(row.createdAt).toISOString(),
    });
    expect(body.data.node).toEqual({ __typename: 'Delivery', id: row.id, recipient: row.recipient });

    for (const id of ['dlv_000000000000ffffffffffffffff', 'not-a-delivery-id', '']) {
      const unknown = await gateway.graphql(one, { id });
      expect(unknown.body.errors, JSON.stringify(unknown.body.errors)).toBeUndefined();
      expect(unknown.body.data).toEqual({ delivery: null, node: null });
    }
  });
});
