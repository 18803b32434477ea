import type { Database, Statement } from 'better-sqlite3';
import type { RetentionStep } from './store';
import { finalStatusesSql, redactedPayload } from './store-rules';

/** `PRAGMA auto_vacuum` = INCREMENTAL: free pages stay in the file until `incremental_vacuum` gives them back. */
export const incrementalAutoVacuum = 2;

/**
 * The retention pass's statements on one connection (the event loop's, or the maintenance thread's), each run inside
 * a write transaction by its caller. See `Store.purgeFinal`, `Store.redactContent`, `Store.reclaimSpace`.
 */
export function retentionStatements(client: Database, prepare: (source: string) => Statement) {
  return {
    /** Whether `purgeFinal` would find a row: read on the event loop before a pass starts its thread. */
    anyToPurge(before: number): boolean {
      return (
        prepare(`select 1 from deliveries indexed by deliveries_created_idx where created_at < ? and status in ${finalStatusesSql} limit 1`).get(
          before,
        ) !== undefined
      );
    },

    /** Whether `redactContent` would find a row. */
    anyToRedact(before: number): boolean {
      return (
        prepare(
          `select 1 from deliveries indexed by deliveries_unredacted_created_idx
           where content_redacted_at is null and created_at < ? and status in ${finalStatusesSql} limit 1`,
        ).get(before) !== undefined
      );
    },

    /** Whether `reclaimSpace` has pages to give back. */
    anyToReclaim(): boolean {
      return (client.pragma('freelist_count', { simple: true }) as number) > 0;
    },

    purgeFinal(before: number, limit: number): number {
      // Attempts go with their delivery (ON DELETE CASCADE).
      const gone = prepare(
        `delete from deliveries where id in (
           select id from deliveries indexed by deliveries_created_idx
           where created_at < ? and status in ${finalStatusesSql} order by created_at limit ?)
         returning id`,
      ).all(before, limit) as { id: string }[];
      if (gone.length === 0) return 0;
      const ids = JSON.stringify(gone.map((row) => row.id));
      prepare('update deliveries set digest_id = null where digest_id in (select value from json_each(?))').run(ids);
      return gone.length;
    },

    redactContent(before: number, limit: number, now: number): number {
      return prepare(
        `update deliveries set payload = ?, sealed_secrets = null, content_redacted_at = ?
         where id in (select id from deliveries indexed by deliveries_unredacted_created_idx
                      where content_redacted_at is null and created_at < ? and status in ${finalStatusesSql}
                      order by created_at limit ?)`,
      ).run(redactedPayload, now, before, limit).changes;
    },

    /** Free pages still in the file after giving up to `pages` back. */
    reclaimSpace(pages: number): number {
      client.pragma(`incremental_vacuum(${Math.max(1, Math.floor(pages))})`);
      return client.pragma('freelist_count', { simple: true }) as number;
    },
  };
}

export type RetentionStatements = ReturnType<typeof retentionStatements>;
export type RetentionOperation =
  | { kind: 'purgeFinal'; args: [before: number, limit: number] }
  | { kind: 'redactContent'; args: [before: number, limit: number, now: number] }
  | { kind: 'reclaimSpace'; args: [pages: number] };

/** Runs one operation (inside the caller's transaction, or as one when `transaction` is given) and times it. */
export function timedStep(
  statements: RetentionStatements,
  operation: RetentionOperation,
  transaction: (work: () => number) => number = (work) => work(),
): RetentionStep {
  const started = performance.now();
  const count = transaction(() => (statements[operation.kind] as (...args: number[]) => number)(...operation.args));
  return { count, transactionMs: performance.now() - started };
}
