import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore } from '../../src/db';
import type { NewDeliveryRow } from '../../src/db/schema';
import type { Store, StoreKind } from '../../src/db/store';
import { newDeliveryId } from '../../src/delivery/service';
import { createTestDatabase } from './postgres';

export interface TestStores {
  kind: StoreKind;
  /** The first store on the database. */
  store: Store;
  /** Another connection to the same database: another process, as far as the database can tell. */
  another(): Promise<Store>;
  close(): Promise<void>;
}

/** A fresh database of that kind with the real migrations, and as many stores on it as a test asks for. */
export async function openTestStores(kind: StoreKind): Promise<TestStores> {
  const opened: Store[] = [];
  let open: () => Promise<Store>;
  let cleanup: () => Promise<void>;
  if (kind === 'postgres') {
    const database = await createTestDatabase();
    open = () => openStore({ kind: 'postgres', url: database.url, poolSize: 10 });
    cleanup = () => database.drop();
  } else {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-store-'));
    open = () => openStore({ kind: 'sqlite', path: path.join(dir, 'notify.db') });
    cleanup = async () => fs.rmSync(dir, { recursive: true, force: true });
  }
  const another = async () => {
    const store = await open();
    opened.push(store);
    return store;
  };
  const store = await another();
  return {
    kind,
    store,
    another,
    async close() {
      for (const each of opened) await each.close();
      await cleanup();
    },
  };
}

/** A QUEUED delivery row as the service would insert it (an email unless `overrides` say otherwise). */
export function deliveryRow(overrides: Partial<NewDeliveryRow> = {}): NewDeliveryRow {
  const now = overrides.createdAt ?? Date.now();
  return {
    id: newDeliveryId(now),
    channel: 'EMAIL',
    status: 'QUEUED',
    provider: 'smtp',
    recipient: 'ops@example.com',
    payload: JSON.stringify({ to: ['ops@example.com'], subject: 'disk full' }),
    sealedSecrets: null,
    callerId: 'env:1',
    idempotencyKey: null,
    requestHash: null,
    nextAttemptAt: now,
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}
