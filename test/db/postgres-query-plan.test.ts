import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresStore } from '../../src/db/postgres-store';
import { encodeCursor } from '../../src/graphql/types/deliveries-query';
import { insertOwnReaderToken, startGatewayOn, storeUnavailable, type AnyGateway } from '../support/db';

/**
 * The PostgreSQL counterpart of deliveries-query-plan.test.ts: the deliveries list must stay fast on a big table. Every
 * combination of filters the API allows runs through GraphQL; the SQL PostgresStore.listDeliveries sends is captured
 * and EXPLAINed on a table of 50 000 analysed rows, on one of the store's own connections (its session settings). The
 * store sends it unnamed, so PostgreSQL plans it for the values at hand every time (a named statement would turn to a
 * generic plan after five runs): that plan must walk a deliveries_*_idx index in the answer's order (Index Scan or
 * Index Only Scan, backward for newest first) under the LIMIT, bounded by the time filters and cursors: no Seq Scan,
 * no bitmap scan, no Sort. Some combinations cannot (see `sortsMatches`).
 */

const rows = 50_000;
const base = Date.UTC(2025, 0, 1);
const minute = 60_000;
/** Row n (1-based) was created n minutes after `base`, plus a few milliseconds. */
const createdAt = (n: number) => base + n * minute + (n % 7);
const idOf = (n: number) => `dlv_${createdAt(n).toString(16).padStart(12, '0')}${n.toString(16).padStart(16, '0')}`;

/**
 * A realistic mix, each column drawn independently of the others (multiplicative hashes of n, 0–99): DING 20 %, EMAIL
 * 50 %, SMS 30 %; SENT 85 %, FAILED 5 %, the other statuses rarer; one busy mailbox (ops@example.com) gets a fifth of
 * the emails, the others a long tail, and each SMS number a couple of codes; 5 % of the rows were sent with tok_own.
 */
const seed = `
  insert into deliveries (id, channel, status, provider, recipient, payload, caller_id, attempts, created_at, updated_at)
  select 'dlv_' || lpad(to_hex(created_at), 12, '0') || lpad(to_hex(n), 16, '0'), channel,
    case when p2 < 85 then 'SENT' when p2 < 90 then 'FAILED' when p2 < 94 then 'CANCELLED'
         when p2 < 97 then 'QUEUED' when p2 < 99 then 'RETRYING' else 'SENDING' end,
    'p',
    case channel when 'DING' then 'robot:' || lpad(to_hex(p3 % 20), 12, '0')
                 when 'EMAIL' then case when p3 < 20 then 'ops@example.com' else 'user' || (n % 997) || '@example.com' end
                 else '+86138' || lpad((n % 9973)::text, 8, '0') end,
    '{}',
    case when p4 < 5 then 'tok_own' else 'env:1' end,
    1, created_at, created_at
  from (
    select n, $2::bigint + n * $3::bigint + n % 7 as created_at,
      case when p1 < 20 then 'DING' when p1 < 70 then 'EMAIL' else 'SMS' end as channel, p2, p3, p4
    from generate_series(1, $1::int) as n,
      lateral (select (n::bigint * 2654435761 % 4294967296) * 100 / 4294967296 as p1,
                      (n::bigint * 2246822519 % 4294967296) * 100 / 4294967296 as p2,
                      (n::bigint * 3266489917 % 4294967296) * 100 / 4294967296 as p3,
                      (n::bigint * 668265263 % 4294967296) * 100 / 4294967296 as p4) as draws
  ) as drawn`;

// The filter values: each matches thousands of rows, a small share of the table (what makes sorting them costly).
const values = {
  channel: 'SMS',
  status: 'FAILED',
  recipient: 'ops@example.com',
  createdAfter: new Date(createdAt(12_000)).toISOString(),
  createdBefore: new Date(createdAt(38_000)).toISOString(),
  /** Newest first, `after` reads older rows; `before` newer ones. */
  after: encodeCursor({ createdAt: createdAt(31_000), id: idOf(31_000) }),
  before: encodeCursor({ createdAt: createdAt(19_000), id: idOf(19_000) }),
};

type Filter = 'channel' | 'status' | 'recipient' | 'createdAfter' | 'createdBefore';
const filters: Filter[] = ['channel', 'status', 'recipient', 'createdAfter', 'createdBefore'];
/** Every subset of the filters. */
const filterSets: Filter[][] = Array.from({ length: 2 ** filters.length }, (_, mask) => filters.filter((_f, bit) => mask & (1 << bit)));

interface Page {
  label: string;
  args: string;
  /** `first` reads newest first (a backward index walk), `last` oldest first. */
  newestFirst: boolean;
  after: boolean;
  before: boolean;
}

/** Every shape of page the connection allows: direction, and one cursor, the other or both. */
const pages: Page[] = [
  { label: 'first', args: 'first: 20', newestFirst: true, after: false, before: false },
  { label: 'last', args: 'last: 20', newestFirst: false, after: false, before: false },
  { label: 'first after', args: `first: 20, after: "${values.after}"`, newestFirst: true, after: true, before: false },
  { label: 'last before', args: `last: 20, before: "${values.before}"`, newestFirst: false, after: false, before: true },
  { label: 'first before', args: `first: 20, before: "${values.before}"`, newestFirst: true, after: false, before: true },
  { label: 'last after', args: `last: 20, after: "${values.after}"`, newestFirst: false, after: true, before: false },
  { label: 'first after before', args: `first: 20, after: "${values.after}", before: "${values.before}"`, newestFirst: true, after: true, before: true },
  { label: 'last after before', args: `last: 20, after: "${values.after}", before: "${values.before}"`, newestFirst: false, after: true, before: true },
  { label: 'first 100', args: 'first: 100', newestFirst: true, after: false, before: false },
];

/**
 * The combinations that do NOT meet the bar with the current indexes (PostgreSQL 15, this table): two equality filters
 * that each keep a small share of the rows (any two of status, recipient and callerId), or recipient with channel. The
 * planner then estimates their intersection as a few dozen rows (it multiplies the selectivities) and prefers a bitmap
 * scan of one index (or a BitmapAnd of two) followed by a top-N Sort of every match, to walking one index in order:
 * here it sorts 30 to 2 500 rows. There is no index on two of these columns with created_at after them to walk
 * instead. These combinations are held to the lesser bar of `searchProblems`; every other one to the full bar.
 */
function sortsMatches(set: Filter[], own: boolean): boolean {
  const selective = [set.includes('status'), set.includes('recipient'), own].filter(Boolean).length;
  return selective >= 2 || (set.includes('recipient') && set.includes('channel'));
}

const literal = (name: Filter) => (name === 'channel' || name === 'status' ? values[name] : JSON.stringify(values[name]));

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Scan Direction'?: string;
  'Index Cond'?: string;
  Filter?: string;
  Plans?: PlanNode[];
}

function nodesOf(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(nodesOf)];
}

/** One line per node: what the plan does, for the failure message. */
const describePlan = (plan: PlanNode) =>
  nodesOf(plan)
    .map((node) =>
      [node['Node Type'], node['Scan Direction'], node['Index Name'], node['Index Cond'] && `cond ${node['Index Cond']}`, node.Filter && `filter ${node.Filter}`]
        .filter(Boolean)
        .join(' '),
    )
    .join(' | ');

describe.skipIf(storeUnavailable('postgres'))('deliveries query plans on PostgreSQL', () => {
  let gateway: AnyGateway;
  let pool: pg.Pool;
  let restore: () => void;
  const executed: { text: string; values: unknown[]; name?: string }[] = [];
  const ownToken = 'own-deliveries-token';

  beforeAll(async () => {
    gateway = await startGatewayOn('postgres', { noDispatch: true });
    pool = (gateway.store as PostgresStore).pool;
    await insertOwnReaderToken(gateway, ownToken);
    await pool.query(seed, [rows, base, minute]);
    // Statistics from every row (the sample covers the table): the same plans on every run.
    await pool.query('alter table deliveries alter column channel set statistics 1000, alter column status set statistics 1000, alter column recipient set statistics 1000, alter column caller_id set statistics 1000, alter column created_at set statistics 1000');
    await pool.query('analyze deliveries');
    // Record every statement the store sends (listDeliveries sends { name, text, values }).
    const query = pool.query;
    pool.query = function (this: pg.Pool, ...args: unknown[]) {
      const [config, params] = args as [string | pg.QueryConfig, unknown[] | undefined];
      if (typeof config === 'string') executed.push({ text: config, values: params ?? [] });
      else executed.push({ text: config.text, values: config.values ?? params ?? [], name: config.name });
      return (query as (...all: unknown[]) => unknown).apply(this, args);
    } as typeof pool.query;
    restore = () => {
      pool.query = query;
    };
  });
  afterAll(async () => {
    restore?.();
    await gateway?.close();
  });

  it('has a big, analysed table where every filter value is a small share of it', async () => {
    const { rows: counts } = await pool.query<Record<string, number>>(
      `select count(*)::int as total,
         count(*) filter (where channel = $1)::int as channel, count(*) filter (where status = $2)::int as status,
         count(*) filter (where recipient = $3)::int as recipient, count(*) filter (where caller_id = 'tok_own')::int as caller
       from deliveries`,
      [values.channel, values.status, values.recipient],
    );
    expect(counts[0].total).toBe(rows);
    for (const name of ['channel', 'status', 'recipient', 'caller']) {
      expect(counts[0][name], name).toBeGreaterThan(1000);
      expect(counts[0][name], name).toBeLessThan(rows / 2);
    }
    const { rows: stats } = await pool.query(`select reltuples from pg_class where relname = 'deliveries'`);
    expect(stats[0].reltuples).toBe(rows);
  });

  /** The list statement one GraphQL query runs, exactly as sent. */
  async function listStatement(args: string, token?: string) {
    executed.length = 0;
    const { body } = await gateway.graphql(`{ deliveries(${args}) { edges { node { id } } } }`, {}, token ? { token } : undefined);
    expect(body.errors).toBeUndefined();
    const lists = executed.filter(({ text }) => /from deliveries/.test(text) && /order by created_at/.test(text));
    expect(lists).toHaveLength(1);
    return lists[0];
  }

  /** The plan PostgreSQL makes for the statement with these values, on one of the store's connections. */
  async function planOf(text: string, params: unknown[]): Promise<PlanNode> {
    const client = await pool.connect();
    try {
      const { rows: explained } = await client.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(`explain (format json) ${text}`, params);
      return explained[0]['QUERY PLAN'][0].Plan;
    } finally {
      client.release();
    }
  }

  /** What keeps a plan from being an ordered index walk under the LIMIT (nothing when it is one). */
  function walkProblems(plan: PlanNode, page: Page, timeBound: boolean): string[] {
    const found: string[] = [];
    const nodes = nodesOf(plan);
    if (plan['Node Type'] !== 'Limit') found.push(`top node is ${plan['Node Type']}, not Limit`);
    for (const node of nodes) {
      if (/Seq Scan|Sort|Bitmap/.test(node['Node Type'])) found.push(node['Node Type']);
    }
    const scans = nodes.filter((node) => node['Relation Name'] === 'deliveries');
    if (scans.length !== 1) found.push(`${scans.length} scans of deliveries`);
    for (const scan of scans) {
      if (!/^Index (Only )?Scan$/.test(scan['Node Type'])) found.push(`scan is ${scan['Node Type']}`);
      const index = scan['Index Name'] ?? '';
      if (!/^deliveries_\w+_idx$/.test(index)) found.push(`index ${index || '(none)'}`);
      const direction = page.newestFirst ? 'Backward' : 'Forward';
      if (scan['Scan Direction'] !== direction) found.push(`scan ${scan['Scan Direction']}, not ${direction}`);
      // Time bounds and cursors bound the walk (Index Cond), not filter what it reads.
      if (timeBound && !/created_at/.test(scan['Index Cond'] ?? '')) found.push('no time bound in the index condition');
      if (/created_at/.test(scan.Filter ?? '')) found.push(`created_at filtered, not searched: ${scan.Filter}`);
    }
    return found;
  }

  /**
   * The lesser bar for the combinations listed under `sortsMatches`: still never a scan of the table, every row found
   * through deliveries_*_idx indexes; a Sort only as the top-N sort right under the LIMIT.
   */
  function searchProblems(plan: PlanNode): string[] {
    const found: string[] = [];
    const nodes = nodesOf(plan);
    if (plan['Node Type'] !== 'Limit') found.push(`top node is ${plan['Node Type']}, not Limit`);
    for (const node of nodes) {
      if (/Seq Scan/.test(node['Node Type'])) found.push(node['Node Type']);
      if (/Sort/.test(node['Node Type']) && !plan.Plans?.includes(node)) found.push(`${node['Node Type']} below the top`);
      if (/Index/.test(node['Node Type']) && !/^deliveries_\w+_idx$/.test(node['Index Name'] ?? '')) found.push(`index ${node['Index Name']}`);
    }
    const scans = nodes.filter((node) => node['Relation Name'] === 'deliveries');
    if (scans.length !== 1) found.push(`${scans.length} scans of deliveries`);
    for (const scan of scans) {
      if (!/^(Index (Only )?Scan|Bitmap Heap Scan)$/.test(scan['Node Type'])) found.push(`scan is ${scan['Node Type']}`);
    }
    return found;
  }

  const combinations = filterSets.flatMap((set) =>
    [false, true].map((own) => ({
      label: [...set, ...(own ? ['callerId (read: own)'] : [])].join(', ') || 'no filter',
      set,
      own,
    })),
  );

  it.each(combinations)('$label: an ordered index walk for every page', async ({ set, own }) => {
    const lesserBar = sortsMatches(set, own);
    const failures: string[] = [];
    for (const page of pages) {
      const args = [page.args, ...set.map((name) => `${name}: ${literal(name)}`)].join(', ');
      const { text, values: params, name } = await listStatement(args, own ? ownToken : undefined);
      // Unnamed: planned for its values on every run, never a generic plan.
      expect(name).toBeUndefined();
      if (own) expect(text).toMatch(/caller_id = \$\d/);
      expect(text).not.toMatch(/offset/i);
      expect(text).toMatch(/limit \$\d+$/);
      const timeBound = page.after || page.before || set.includes('createdAfter') || set.includes('createdBefore');
      const plan = await planOf(text, params);
      const found = lesserBar ? searchProblems(plan) : walkProblems(plan, page, timeBound);
      if (found.length > 0) failures.push(`${page.label}: ${found.join('; ')}\n    ${describePlan(plan)}`);
    }
    expect(failures, failures.join('\n')).toEqual([]);
  });

  // Last: it changes the table. The newest rows all waiting (a backlog), and a page of SENT ones: walking the created_at
  // index and filtering would read past every waiting row first.
  it('a common status behind a run of newer rows of another still walks its own index', async () => {
    await pool.query(`update deliveries set status = 'QUEUED' where created_at > $1`, [createdAt(rows - 5000)]);
    await pool.query('analyze deliveries');
    for (const page of pages.filter(({ after, before }) => !after && !before)) {
      const { text, values: params } = await listStatement(`${page.args}, status: SENT`);
      const plan = await planOf(text, params);
      expect(walkProblems(plan, page, false), describePlan(plan)).toEqual([]);
      expect(nodesOf(plan).find((node) => node['Relation Name'] === 'deliveries')?.['Index Name']).toBe('deliveries_status_created_idx');
    }
  });
});
