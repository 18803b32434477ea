import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertOwnReaderToken } from '../support/db';
import { startGateway, type TestGateway } from '../support/gateway';

/**
 * The deliveries list must stay fast with a million rows: every filter reads an index whose order is the answer's
 * order, so SQLite stops after one page. These tests run the real GraphQL queries, capture the SQL they execute and
 * ask SQLite for its plan.
 */
describe('deliveries query plans', () => {
  let gateway: TestGateway;
  let restore: () => void;
  const executed: { sql: string; params: unknown[] }[] = [];
  const cursor = Buffer.from('1736150400000:dlv_01944b4d7c00ffffffffffffffff').toString('base64url');
  const ownToken = 'own-deliveries-token';

  beforeAll(async () => {
    gateway = await startGateway({ noDispatch: true });
    await insertOwnReaderToken(gateway, ownToken);
    // better-sqlite3 statements share one prototype: record what each `all` runs (drizzle reads through it).
    const Statement = Object.getPrototypeOf(gateway.store.db.$client.prepare('select 1'));
    const all = Statement.all;
    Statement.all = function (this: { source: string }, ...params: unknown[]) {
      executed.push({ sql: this.source, params });
      return all.apply(this, params);
    };
    restore = () => {
      Statement.all = all;
    };
  });
  afterAll(async () => {
    restore();
    await gateway.close();
  });

  const planOf = async (args: string, token?: string) => {
    executed.length = 0;
    const { body } = await gateway.graphql(`{ deliveries(${args}) { edges { node { id } } } }`, {}, { token });
    expect(body.errors).toBeUndefined();
    const lists = executed.filter(({ sql }) => /from "deliveries"/.test(sql) && /order by/.test(sql));
    expect(lists).toHaveLength(1);
    const { sql, params } = lists[0];
    const plan = gateway.store.db.$client
      .prepare(`EXPLAIN QUERY PLAN ${sql}`)
      .all(...params)
      .map((row) => (row as { detail: string }).detail);
    return { sql, plan: plan.join(' | ') };
  };

  const window = 'createdAfter: "2025-01-01T00:00:00Z", createdBefore: "2026-01-01T00:00:00Z"';
  it.each([
    ['no filter', 'first: 20', /^SCAN deliveries USING INDEX deliveries_created_idx$/],
    ['channel', 'channel: SMS', /deliveries_channel_created_idx \(channel=\?\)/],
    ['status', 'status: FAILED', /deliveries_status_created_idx \(status=\?\)/],
    ['recipient', 'recipient: "+8613800138000"', /deliveries_recipient_created_idx \(recipient=\?\)/],
    ['createdAfter', 'createdAfter: "2025-01-01T00:00:00Z"', /deliveries_created_idx \(created_at>\?\)/],
    ['createdBefore', 'createdBefore: "2025-01-01T00:00:00Z"', /deliveries_created_idx \(created_at<\?\)/],
    ['a time window', window, /deliveries_created_idx \(created_at>\? AND created_at<\?\)/],
    ['channel after a cursor', `channel: DING, first: 20, after: "${cursor}"`, /deliveries_channel_created_idx \(channel=\? AND \(created_at,id\)<\(\?,\?\)\)/],
    ['status before a cursor', `status: QUEUED, last: 20, before: "${cursor}"`, /deliveries_status_created_idx \(status=\? AND \(created_at,id\)>\(\?,\?\)\)/],
    ['no filter after a cursor', `first: 20, after: "${cursor}"`, /deliveries_created_idx \(\(created_at,id\)<\(\?,\?\)\)/],
    ['channel, status and a time window', `channel: EMAIL, status: SENT, ${window}`, /USING INDEX deliveries_(channel|status)_created_idx \((channel|status)=\? AND created_at>\? AND created_at<\?\)/],
    ['recipient, channel and a cursor', `recipient: "a@example.com", channel: EMAIL, after: "${cursor}"`, /USING INDEX deliveries_recipient_created_idx \(recipient=\?/],
  ])('%s: searches a matching index, in order, without a sort', async (_label, args, expected) => {
    const { plan } = await planOf(args);
    expect(plan).toMatch(expected);
    expect(plan).not.toMatch(/SCAN deliveries($| \|)/);
    expect(plan).not.toMatch(/TEMP B-TREE/);
  });

  it('a token that reads only its own deliveries searches the caller index', async () => {
    const { sql, plan } = await planOf('first: 20', ownToken);
    expect(sql).toMatch(/"caller_id" = \?/);
    expect(plan).toMatch(/deliveries_caller_created_idx \(caller_id=\?\)/);
    expect(plan).not.toMatch(/TEMP B-TREE/);
  });

  it('keyset, not OFFSET', async () => {
    const { sql } = await planOf(`first: 20, after: "${cursor}"`);
    expect(sql).not.toMatch(/offset/i);
    expect(sql).toMatch(/limit \?$/);
  });
});
