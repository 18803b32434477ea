import { createServerAdapter } from '@whatwg-node/server';
import { createYoga } from 'graphql-yoga';
import { Authenticator, type Caller } from './auth';
import type { Channels } from './channels/channel';
import type { Config } from './config';
import type { Store } from './db/store';
import { Dispatcher } from './delivery/dispatcher';
import { DeliveryEvents } from './delivery/events';
import { DeliveryService } from './delivery/service';
import { errorCatalog } from './errors';
import type { GraphQLContext } from './graphql/builder';
import { schema } from './graphql/schema';
import type { Logger } from './logger';
import type { SecretBox } from './secrets';

export interface AppDeps {
  config: Config;
  store: Store;
  channels: Channels;
  secretBox: SecretBox;
  logger: Logger;
}

export type App = ReturnType<typeof createApp>;

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8' } });

/** Builds the whole gateway without listening: tests call `app.fetch`, main hands `app.handler` to node:http. */
export function createApp({ config, store, channels, secretBox, logger }: AppDeps) {
  const events = new DeliveryEvents();
  const dispatcher = new Dispatcher({ store, channels, secretBox, events, logger, config });
  const service = new DeliveryService({ store, channels, dispatcher, events, secretBox, config });
  const authenticator = new Authenticator(store, config.opsTokens);

  const yoga = createYoga<{ caller: Caller }, GraphQLContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    logging: logger.child({ component: 'graphql' }),
    maskedErrors: true,
    graphiql: {
      title: 'notify-gateway',
      headers: JSON.stringify({ 'OPS-Token': 'paste your token here' }),
      defaultQuery: `# Put your OPS-Token in the Headers tab below, then run this.
query RecentDeliveries {
  deliveries(first: 10) {
    edges { node { id channel status recipient attempts lastError { code message } createdAt sentAt } }
    pageInfo { hasNextPage endCursor }
  }
}
`,
    },
    context: ({ caller, request }) => ({
      caller,
      service,
      events,
      idempotencyKey: request.headers.get('idempotency-key') ?? undefined,
    }),
  });

  const isGraphiQLPage = (request: Request, url: URL) =>
    request.method === 'GET' && !url.searchParams.has('query') && (request.headers.get('accept') ?? '').includes('text/html');

  async function authenticate(request: Request): Promise<Caller | undefined> {
    return authenticator.authenticate(request.headers.get('ops-token'));
  }

  const adapter = createServerAdapter(async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (url.pathname === '/healthz') return json({ status: 'ok' });
    if (url.pathname === '/readyz') {
      const ready = (await store.ping()) && (await store.migrationsCurrent()) && dispatcher.running;
      return json({ status: ready ? 'ready' : 'not ready' }, ready ? 200 : 503);
    }
    if (url.pathname === '/graphql') {
      if (isGraphiQLPage(request, url)) return yoga.fetch(request, { caller: undefined as never });
      const caller = await authenticate(request);
      if (!caller) {
        return json(
          { errors: [{ message: errorCatalog.UNAUTHENTICATED.description, extensions: { code: 'UNAUTHENTICATED' } }] },
          401,
        );
      }
      return yoga.fetch(request, { caller });
    }
    return json({ error: 'not found' }, 404);
  });

  return {
    fetch: (request: Request) => adapter.fetch(request),
    handler: adapter,
    service,
    dispatcher,
    events,
    authenticator,
    start() {
      dispatcher.start();
    },
    /** Stops sending, letting attempts under way finish within `deadlineMs`. */
    async stop(deadlineMs: number) {
      return dispatcher.stop(deadlineMs);
    },
  };
}
