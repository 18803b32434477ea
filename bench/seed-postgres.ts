import type pg from 'pg';

/**
 * bench/seed.ts on PostgreSQL: the same `total` deliveries (spread over 30 days before now, 10,000 recipients, all
 * three channels, mostly SENT, the newest `pending` of them emails QUEUED and due now), with the same ids, times and
 * payloads, in one INSERT … SELECT over generate_series. Then VACUUM ANALYZE (statistics for the planner, a visibility
 * map) and a CHECKPOINT: the pages are on disk before anything is measured, not written back in the middle of it.
 */
export async function seedPostgres(client: pg.Client, total: number, pending: number): Promise<void> {
  const now = Date.now();
  const span = 30 * 24 * 3600 * 1000;
  await client.query(
    `insert into deliveries (id, channel, status, provider, recipient, payload, caller_id, attempts, next_attempt_at,
                             created_at, updated_at, sent_at)
     select 'dlv_' || lpad(to_hex(t), 12, '0') || lpad(to_hex(i), 16, '0'),
            case when pending then 'EMAIL' else (array['DING', 'EMAIL', 'SMS'])[i % 3 + 1] end,
            case when pending then 'QUEUED' when i % 50 = 0 then 'FAILED' else 'SENT' end,
            case when pending then 'smtp' else (array['dingtalk', 'smtp', 'aliyun'])[i % 3 + 1] end,
            case when i % 3 = 1 or pending then 'user' || i % 10000 || '@example.com'
                 when i % 3 = 0 then 'robot:' || lpad(to_hex(i % 500), 12, '0') else '+86138' || lpad((i % 10000)::text, 8, '0') end,
            case when i % 3 = 1 or pending
                 then '{"to":["user' || i % 10000 || '@example.com"],"cc":[],"bcc":[],"subject":"bench","text":"seeded message ' || i || '"}'
                 else '{}' end,
            'env:1', case when pending then 0 else 1 end, case when pending then $1::bigint end,
            t, t, case when not pending then t end
     from (select i, $2::bigint + i * $3::bigint as t, i > $4::int - $5::int as pending
           from generate_series(1, $4::int) as i) as n`,
    [now, now - span, Math.floor(span / total), total, pending],
  );
  await client.query('vacuum analyze deliveries');
  await client.query('checkpoint');
}
