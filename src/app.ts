import type { IncomingMessage, RequestListener } from 'node:http';
import { createServerAdapter } from '@whatwg-node/server';
import { Authenticator, type Caller } from './auth';
import type { Channels } from './channels/channel';
import type { Config } from './config';
import type { ChannelName, DeliveryRow } from './db/schema';
import type { Store } from './db/store';
import { Digests } from './digest/digests';
import { Dispatcher } from './delivery/dispatcher';
import { DeliveryEvents } from './delivery/events';
import { DeliveryService } from './delivery/service';
import { guardStore, StoreHealth } from './db/store-faults';
import { errorCatalog, StoreUnavailableError } from './errors';
import { serveGraphqlOverNode, storeUnavailableBody, storeUnavailableInit } from './graphql/serve-over-node';
import { createWebSocketTransport } from './graphql/serve-over-websocket';
import { createGraphQLHandler } from './graphql/yoga';
import { crossSiteRefusal, isCrossSiteBrowserRequest, isNavigation, withBodyLimit } from './http-guards';
import type { Logger } from './logger';
import { createConsoleRoute } from './operations/console-route';
import { useOperationMetrics } from './operations/graphql-plugins';
import { GatewayMetrics } from './operations/metrics';
import { CallerActivity, isCallerPath } from './operations/caller-activity';
import { Retention } from './operations/retention';
import { carryRequestNote, createRequestObserver, observeRequests, requestNote } from './operations/request-log';
import { createMetricsHandler, createOperationsRoutes } from './operations/routes';
import { answerFetch, legacyTarget, serveOverNode } from './rest/legacy-entries';
import { createLegacyRoutes, isLegacyPath } from './rest/legacy-routes';
import { withOpenApiDocument } from './rest/openapi';
import type { SecretBox } from './secrets';

export interface AppDeps {
  config: Config;
  store: Store;
  channels: Channels;
  secretBox: SecretBox;
  logger: Logger;
}

export type App = ReturnType<typeof createApp>;

const warmUpCaller: Caller = { id: 'warm-up', name: 'warm-up', scopes: { channels: [], read: 'all' } };
const warmUpQuery = `{ viewer { name channels read admin }
  deliveries(first: 50) { edges { cursor node { id channel status recipient attempts createdAt updatedAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`;

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8' } });

/** Builds the whole gateway without listening: tests call `app.fetch`, main hands `app.handler` to node:http. */
export function createApp({ config, store: database, channels, secretBox, logger }: AppDeps) {
  const metrics = new GatewayMetrics({ store: database, logger });
  const storeHealth = new StoreHealth(database, { logger, observer: (kind) => metrics.storeFault(kind) });
  // Everything below uses the store through the guard: a fault of the database is a StoreUnavailableError.
  const store = guardStore(database, storeHealth);
  const events = new DeliveryEvents();
  if (store.changes) {
    // Replicas on one database: changes made by the others reach this one's waiting callers and subscriptions.
    events.connect(
      store.changes,
      (ids) => store.getDeliveries(ids),
      (error) => logger.warn({ err: error }, 'could not read deliveries changed by another replica'),
    );
  }
  const digests = config.robotDigest ? new Digests({ store, events, logger }) : undefined;
  const dispatcher = new Dispatcher({ store, channels, secretBox, events, logger, config, digests });
  const activity = new CallerActivity();
  dispatcher.onAttempt(({ delivery, attempt }) => {
    activity.note();
    metrics.attemptFinished(delivery, attempt);
  });
  storeHealth.onHealed(() => dispatcher.resume());
  const observer = {
    accepted: (delivery: DeliveryRow) => {
      activity.note();
      metrics.deliveryAccepted(delivery);
    },
    rateLimited: (channel: ChannelName, scope: 'recipient' | 'caller') => metrics.rateLimitRefused(channel, scope),
  };
  const service = new DeliveryService({ store, channels, dispatcher, events, secretBox, config, observer });
  const authenticator = new Authenticator(store, config.opsTokens);
  const retention = new Retention({
    store,
    config,
    activity,
    logger: logger.child({ component: 'retention' }),
    observer: { purged: (count) => metrics.deliveriesPurged(count), redacted: (count) => metrics.deliveriesRedacted(count) },
  });
  const yoga = createGraphQLHandler({
    config,
    service,
    events,
    authenticator,
    logger,
    plugins: [useOperationMetrics(metrics)],
  });
  const operations = createOperationsRoutes({ store, storeHealth, dispatcher, metrics, metricsOnMainPort: config.metricsPort === undefined });
  const legacy = withOpenApiDocument(
    createLegacyRoutes({ service, authenticator, logger, bodyLimitBytes: config.bodyLimitBytes }),
  );
  const consolePage = createConsoleRoute(config.consoleDir);

  const isGraphiQLPage = (request: Request, url: URL) =>
    request.method === 'GET' && !url.searchParams.has('query') && (request.headers.get('accept') ?? '').includes('text/html');

  const handle = async (request: Request, context?: { req?: IncomingMessage }): Promise<Response> => {
    const url = new URL(request.url);
    // Served by the node:http listener without this adapter; here for app.fetch and paths that normalise to them.
    if (isLegacyPath(url.pathname)) return answerFetch(legacy, request, url);
    const api = url.pathname === '/graphql' || url.pathname.startsWith('/api/');
    // CSRF: a page of another site may link to GraphiQL, but never make the browser call the API.
    if (
      api &&
      isCrossSiteBrowserRequest(request.headers.get('sec-fetch-site')) &&
      !(url.pathname === '/graphql' && isNavigation(request) && isGraphiQLPage(request, url))
    ) {
      const message = crossSiteRefusal;
      return url.pathname === '/graphql'
        ? json({ errors: [{ message, extensions: { code: 'FORBIDDEN' } }] }, 403)
        : json({ code: errorCatalog.FORBIDDEN.restCode, data: message }, 403);
    }
    if (url.pathname === '/graphql') {
      if (isGraphiQLPage(request, url)) return yoga.fetch(request, { caller: undefined as never, requestNote: requestNote(request) });
      // Over node:http a Content-Length frames the body: it cannot be longer, so reading and copying it again to
      // count its bytes is only needed without one (chunked). app.fetch callers' requests are always counted.
      const declared = context?.req ? request.headers.get('content-length') : null;
      const framed = declared !== null && /^\d+$/.test(declared) && Number(declared) <= config.bodyLimitBytes;
      const bounded = framed ? request : await withBodyLimit(request, config.bodyLimitBytes);
      if (!bounded) {
        const message = `The request body is larger than ${config.bodyLimitBytes} bytes`;
        return json({ errors: [{ message, extensions: { code: 'PAYLOAD_TOO_LARGE' } }] }, 413);
      }
      carryRequestNote(request, bounded);
      request = bounded;
      const caller = await authenticator.authenticate(request.headers.get('ops-token')).catch((error: unknown) => {
        if (error instanceof StoreUnavailableError) return error;
        throw error;
      });
      if (caller instanceof StoreUnavailableError) return new Response(storeUnavailableBody(caller), storeUnavailableInit(caller));
      if (!caller) {
        return json(
          { errors: [{ message: errorCatalog.UNAUTHENTICATED.description, extensions: { code: 'UNAUTHENTICATED' } }] },
          401,
        );
      }
      return yoga.fetch(request, { caller, requestNote: requestNote(request) });
    }
    return (await operations(request, url)) ?? (await consolePage(request, url)) ?? json({ error: 'not found' }, 404);
  };
  const logRequest = createRequestObserver({ logger, metrics });
  const observe: typeof logRequest = (method, pathname, requestId) => {
    if (isCallerPath(pathname)) activity.note();
    return logRequest(method, pathname, requestId);
  };
  const adapter = createServerAdapter<{ req?: IncomingMessage }>(observeRequests(handle, observe));
  const legacyOverNode = serveOverNode(legacy, observe);
  const graphqlOverNode = serveGraphqlOverNode({ yoga, authenticator, observe, bodyLimitBytes: config.bodyLimitBytes });
  const webSockets = createWebSocketTransport({
    yoga,
    authenticator,
    logger,
    metrics,
    observe,
    bodyLimitBytes: config.bodyLimitBytes,
    tokenRecheckMs: config.websocketTokenRecheckMs,
  });
  // The legacy routes need none of the fetch machinery, and the usual GraphQL POST only yoga's: node:http's objects
  // serve them straight.
  const handler: RequestListener = (request, response) => {
    const target = legacyTarget(request.url);
    if (target) legacyOverNode(request, response, target);
    else if (!graphqlOverNode(request, response)) void adapter(request, response);
  };

  return {
    fetch: async (request: Request): Promise<Response> => adapter.fetch(request),
    handler,
    /** For node:http's 'upgrade' event: GraphQL over WebSocket at /graphql. */
    upgrade: webSockets.upgrade,
    service,
    dispatcher,
    events,
    authenticator,
    metrics,
    storeHealth,
    retention,
    /** When a caller was last served or a delivery attempted (the retention pass rests less while it is quiet). */
    activity,
    /** Serves /metrics alone, for the METRICS_PORT listener. */
    metricsHandler: createServerAdapter(createMetricsHandler(metrics)),
    start() {
      dispatcher.start();
      retention.start();
    },
    /**
     * Runs the query a console or a client sends first (who am I, the newest page of deliveries) once in-process,
     * before the gateway takes traffic: the first caller after a start would otherwise pay for cold code (yoga's
     * pipeline, the resolvers, the statements), 50–360 ms on a loaded machine against 10–90 ms warm. Reads only;
     * neither logged nor counted. True when the query was answered.
     */
    async warmUp(): Promise<boolean> {
      const body = JSON.stringify({ query: warmUpQuery });
      const request = new Request('http://warm-up.invalid/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body,
      });
      try {
        const response = await yoga.fetch(request, { caller: warmUpCaller, warmUp: true });
        const answer = (await response.json()) as { data?: unknown; errors?: unknown };
        if (response.ok && answer.data && !answer.errors) return true;
        logger.debug({ status: response.status, errors: answer.errors }, 'warm-up query was refused');
      } catch (error) {
        logger.debug({ err: error }, 'warm-up query failed');
      }
      return false;
    },
    /** Closes every WebSocket connection (1001, Going Away), for a shutdown: clients reconnect elsewhere. */
    closeWebSockets: () => webSockets.close(),
    /** Stops sending, letting attempts under way finish within `deadlineMs`. True when all finished. */
    async stop(deadlineMs: number) {
      storeHealth.close();
      await retention.stop();
      return dispatcher.stop(deadlineMs);
    },
  };
}
