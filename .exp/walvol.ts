import fs from 'node:fs';
import Database from 'better-sqlite3';
import { openDatabase } from '../src/db/sqlite-client';
import { retentionStatements } from '../src/db/sqlite-retention';
import { seedDeliveries } from '../bench/seed';
const base = '/tmp/walvol-base.db';
if (!fs.existsSync(base)) { openDatabase(base).$client.close(); seedDeliveries(base, 103_448, 0); }
for (const batch of [10, 40, 160, 640]) {
  const file = `/tmp/walvol-${batch}.db`;
  for (const s of ['', '-wal', '-shm']) fs.rmSync(file + s, { force: true });
  fs.copyFileSync(base, file);
  const db = new Database(file);
  db.pragma('journal_mode = WAL'); db.pragma('synchronous = NORMAL'); db.pragma('wal_autocheckpoint = 0'); db.pragma('foreign_keys = ON'); db.pragma('secure_delete = FAST');
  const st = new Map();
  const r = retentionStatements(db, (s) => { let x = st.get(s); if (!x) st.set(s, (x = db.prepare(s))); return x; });
  const run = db.transaction((n: number) => r.purgeFinal(Date.now() - 86400000, n));
  const t0 = performance.now(); let rows = 0; let steps = 0; let held: number[] = [];
  for (;;) { const a = performance.now(); const n = run.immediate(batch); held.push(performance.now() - a); rows += n; steps++; if (n < batch) break; }
  const ms = performance.now() - t0;
  const wal = fs.statSync(file + '-wal').size;
  // distinct pages: checkpoint count
  const ck = db.pragma('wal_checkpoint(TRUNCATE)') as any[];
  held.sort((x, y) => x - y);
  console.log(`batch ${batch}: ${rows} rows in ${steps} steps, ${ms.toFixed(0)} ms, held p50 ${held[held.length >> 1].toFixed(2)} ms, WAL ${(wal / 1e6).toFixed(1)} MB = ${(wal / rows / 1024).toFixed(2)} KiB/row, frames ${ck[0].log}`);
  db.close();
}
