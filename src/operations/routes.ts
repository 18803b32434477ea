import type { Dispatcher } from '../delivery/dispatcher';
import type { Store } from '../db/store';

export interface OperationsRouteDeps {
  store: Store;
  dispatcher: Dispatcher;
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8' } });

/** Health routes, open without a token and free of anything sensitive. Answers undefined for other paths. */
export function createOperationsRoutes({ store, dispatcher }: OperationsRouteDeps) {
  return async (_request: Request, url: URL): Promise<Response | undefined> => {
    if (url.pathname === '/healthz') return json({ status: 'ok' });
    if (url.pathname === '/readyz') {
      const ready = (await store.ping()) && (await store.migrationsCurrent()) && dispatcher.running;
      return json({ status: ready ? 'ready' : 'not ready' }, ready ? 200 : 503);
    }
    return undefined;
  };
}
