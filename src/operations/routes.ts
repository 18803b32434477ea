import type { Dispatcher } from '../delivery/dispatcher';
import type { Store } from '../db/store';
import type { StoreHealth } from '../db/store-faults';
import type { GatewayMetrics } from './metrics';

export interface OperationsRouteDeps {
  store: Store;
  /** Whether the store takes writes: failing from the first fault until a write goes through again. */
  storeHealth: StoreHealth;
  dispatcher: Dispatcher;
  metrics: GatewayMetrics;
  /** False when METRICS_PORT serves /metrics instead of the main port. */
  metricsOnMainPort: boolean;
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  });

async function check(probe: () => Promise<boolean> | boolean): Promise<'ok' | 'failing'> {
  try {
    return (await probe()) ? 'ok' : 'failing';
  } catch {
    return 'failing';
  }
}

/** Health, readiness and metrics, open without a token and free of anything sensitive. Undefined for other paths. */
export function createOperationsRoutes({ store, storeHealth, dispatcher, metrics, metricsOnMainPort }: OperationsRouteDeps) {
  return async (_request: Request, url: URL): Promise<Response | undefined> => {
    if (url.pathname === '/healthz') return json({ status: 'ok' });
    if (url.pathname === '/readyz') {
      const database = await check(() => store.ping());
      const checks: Record<string, 'ok' | 'failing'> = {
        database,
        migrations: database === 'ok' ? await check(() => store.migrationsCurrent()) : 'failing',
        store: storeHealth.failing ? 'failing' : 'ok',
        dispatcher: dispatcher.running ? 'ok' : 'failing',
      };
      // Replicas on one database: this one hears of the others' changes (waiting callers, subscriptions).
      if (store.changes) checks.liveUpdates = store.changes.connected ? 'ok' : 'failing';
      const ready = Object.values(checks).every((state) => state === 'ok');
      return json({ status: ready ? 'ready' : 'not ready', checks }, ready ? 200 : 503);
    }
    if (url.pathname === '/metrics' && metricsOnMainPort) return metrics.response();
    return undefined;
  };
}

/** The listener for METRICS_PORT: /metrics and nothing else. */
export function createMetricsHandler(metrics: GatewayMetrics) {
  return async (request: Request): Promise<Response> =>
    new URL(request.url).pathname === '/metrics' ? metrics.response() : json({ error: 'not found' }, 404);
}
