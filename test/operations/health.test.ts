import { afterEach, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway';

describe('/healthz and /readyz', () => {
  let gateway: TestGateway;
  afterEach(() => gateway.close());

  it('answer without a token, with nothing but states in them', async () => {
    gateway = await startGateway();
    const health = await gateway.fetch('/healthz');
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await gateway.fetch('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.headers.get('cache-control')).toBe('no-store');
    expect(await ready.json()).toEqual({
      status: 'ready',
      checks: { database: 'ok', migrations: 'ok', store: 'ok', dispatcher: 'ok' },
    });
  });

  it('/readyz is 503 while the dispatcher is not running, /healthz stays 200', async () => {
    gateway = await startGateway({ noDispatch: true });
    const before = await gateway.fetch('/readyz');
    expect(before.status).toBe(503);
    expect(await before.json()).toEqual({
      status: 'not ready',
      checks: { database: 'ok', migrations: 'ok', store: 'ok', dispatcher: 'failing' },
    });
    gateway.app.start();
    expect((await gateway.fetch('/readyz')).status).toBe(200);
    await gateway.app.stop(1000);
    expect((await gateway.fetch('/readyz')).status).toBe(503);
    expect((await gateway.fetch('/healthz')).status).toBe(200);
  });

  it('/readyz is 503 when the database is closed', async () => {
    gateway = await startGateway();
    await gateway.store.close();
    const ready = await gateway.fetch('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({
      status: 'not ready',
      checks: { database: 'failing', migrations: 'failing', store: 'ok', dispatcher: 'ok' },
    });
  });

  it('/readyz is 503 when a migration is missing from the database', async () => {
    gateway = await startGateway();
    gateway.store.db.$client.prepare('delete from __drizzle_migrations where rowid = (select max(rowid) from __drizzle_migrations)').run();
    const ready = await gateway.fetch('/readyz');
    expect(ready.status).toBe(503);
    expect((await ready.json()).checks).toEqual({ database: 'ok', migrations: 'failing', store: 'ok', dispatcher: 'ok' });
  });
});
