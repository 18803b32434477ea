import fs from 'node:fs';
import Database from 'better-sqlite3';

/**
 * Fills a migrated database with `total` deliveries spread over 30 days before now (10,000 recipients, all three
 * channels, mostly SENT), the newest `pending` of them emails QUEUED and due now: the backlog a restart finds, all of it
 * for the SMTP peer, so that its drain rate compares with nodemailer alone.
 */
export function seedDeliveries(databasePath: string, total: number, pending: number): void {
  const db = new Database(databasePath);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const now = Date.now();
  const span = 30 * 24 * 3600 * 1000;
  db.exec(`
    with recursive n(i) as (select 1 union all select i + 1 from n where i < ${total})
    insert into deliveries (id, channel, status, provider, recipient, payload, caller_id, attempts, next_attempt_at,
                            created_at, updated_at, sent_at)
    select printf('dlv_%012x%016x', t, i),
           case when i > ${total - pending} then 'EMAIL' else case i % 3 when 0 then 'DING' when 1 then 'EMAIL' else 'SMS' end end,
           case when i > ${total - pending} then 'QUEUED' when i % 50 = 0 then 'FAILED' else 'SENT' end,
           case when i > ${total - pending} then 'smtp' else case i % 3 when 0 then 'dingtalk' when 1 then 'smtp' else 'aliyun' end end,
           case when i % 3 = 1 or i > ${total - pending} then printf('user%d@example.com', i % 10000)
                when i % 3 = 0 then printf('robot:%012x', i % 500) else printf('+86138%08d', i % 10000) end,
           case when i % 3 = 1 or i > ${total - pending} then json_object('to', json_array(printf('user%d@example.com', i % 10000)),
                'cc', json_array(), 'bcc', json_array(), 'subject', 'bench', 'text', 'seeded message ' || i) else '{}' end,
           'env:1', case when i > ${total - pending} then 0 else 1 end,
           case when i > ${total - pending} then ${now} else null end,
           t, t, case when i > ${total - pending} then null else t end
    from (select i, ${now - span} + i * ${Math.floor(span / total)} as t from n);
  `);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  // Written without syncing (fast), then flushed here: otherwise the kernel writes half a gigabyte back in the middle
  // of the runs that follow, and the query latencies measure that.
  const fd = fs.openSync(databasePath, 'r');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}
