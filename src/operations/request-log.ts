import crypto from 'node:crypto';
import type { Logger } from '../logger';
import type { GatewayMetrics } from './metrics';

/** What inner layers learn about a request, for its log line (the GraphQL plugin fills `operation`). */
export interface RequestNote {
  requestId: string;
  operation?: string;
}

const notes = new WeakMap<Request, RequestNote>();

export function requestNote(request: Request): RequestNote | undefined {
  return notes.get(request);
}

/** For a layer that replaces the request (reading its body, say): the new one keeps the note. */
export function carryRequestNote(from: Request, to: Request): void {
  const note = notes.get(from);
  if (note && from !== to) notes.set(to, note);
}

/** Probes and scrapes come every few seconds: logged at debug so that they do not drown the traffic. */
const quietRoutes = new Set(['/healthz', '/readyz', '/metrics']);
const staticRoutes = new Set([
  '/graphql',
  ...quietRoutes,
  '/api/third/ding/sendMsg',
  '/api/third/email/sendMsg',
  '/api/third/sms/sendMsg',
]);

/** A bounded label for the path: the route, never the raw path (ids, typos and scans would explode the series). */
export function routeTemplate(pathname: string): string {
  if (staticRoutes.has(pathname)) return pathname;
  if (pathname.startsWith('/api/third/')) return '/api/third/*';
  return '*';
}

/** An incoming X-Request-Id is kept when it looks like an id, so a hostile one cannot forge log content. */
const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;

function withHeader(response: Response, name: string, value: string): Response {
  try {
    response.headers.set(name, value);
    return response;
  } catch {
    // Immutable headers (Response.error(), a fetched response): copy it.
    const headers = new Headers(response.headers);
    headers.set(name, value);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }
}

/**
 * Wraps the gateway's handler: a request id for every request (echoed in X-Request-Id), one JSON log line per request
 * and the HTTP metrics. The line holds method, route, status and duration, never the URL, headers or body: the legacy
 * routes carry robot credentials in the query string and every API request an OPS-Token header.
 */
export function observeRequests<Rest extends unknown[]>(
  handle: (request: Request, ...rest: Rest) => Promise<Response>,
  deps: { logger: Logger; metrics: GatewayMetrics },
): (request: Request, ...rest: Rest) => Promise<Response> {
  const log = deps.logger.child({ component: 'http' });
  return async (request, ...rest) => {
    const started = performance.now();
    const incoming = request.headers.get('x-request-id');
    const requestId = incoming && requestIdPattern.test(incoming) ? incoming : crypto.randomUUID();
    const note: RequestNote = { requestId };
    notes.set(request, note);
    const route = routeTemplate(new URL(request.url).pathname);
    let response: Response;
    try {
      response = await handle(request, ...rest);
    } catch (error) {
      log.error({ err: error, requestId }, 'unhandled error while answering a request');
      response = new Response(JSON.stringify({ error: 'internal error' }), {
        status: 500,
        headers: { 'content-type': 'application/json; charset=utf-8' },
      });
    }
    const seconds = (performance.now() - started) / 1000;
    deps.metrics.httpRequest(request.method, route, response.status, seconds);
    const line = {
      requestId,
      method: request.method,
      route,
      status: response.status,
      durationMs: Math.round(seconds * 10_000) / 10,
      ...(note.operation ? { operation: note.operation } : {}),
    };
    if (response.status >= 500) log.error(line, 'request');
    else if (quietRoutes.has(route)) log.debug(line, 'request');
    else log.info(line, 'request');
    return withHeader(response, 'x-request-id', requestId);
  };
}
