import crypto from 'node:crypto';
import type { Logger } from '../logger';
import { legacyOpenApiPath, legacyRoutes } from '../rest/legacy-routes';
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
const staticRoutes = new Set(['/graphql', ...quietRoutes, ...Object.keys(legacyRoutes), legacyOpenApiPath]);

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

/** What an answer to an error that escaped the handlers says (details only in the log). */
export const internalErrorBody = JSON.stringify({ error: 'internal error' });

/** One request under observation: its note (its id), and what to call once it is answered. */
export interface ObservedRequest {
  note: RequestNote;
  /** Logs an error that escaped the handler (the request is then answered 500). */
  failed(error: unknown): void;
  /** Writes the request's log line and metrics. */
  finish(status: number): void;
}

export type RequestObserver = (method: string, pathname: string, incomingRequestId: string | null | undefined) => ObservedRequest;

/**
 * A request id for every request (an incoming X-Request-Id when it looks like one), one JSON log line per request and
 * the HTTP metrics. The line holds method, route, status and duration, never the URL, headers or body: the legacy
 * routes carry robot credentials in the query string and every API request an OPS-Token header.
 */
export function createRequestObserver(deps: { logger: Logger; metrics: GatewayMetrics }): RequestObserver {
  const log = deps.logger.child({ component: 'http' });
  // The request line holds the fields below and nothing else (of the caller's, only a checked id): the logger's
  // redaction, which walks every line looking for credentials and costs more than the rest of the line, has nothing to find.
  const lines = deps.logger.child({ component: 'http' }, { redact: [] });
  return (method, pathname, incomingRequestId) => {
    const started = performance.now();
    const requestId = incomingRequestId && requestIdPattern.test(incomingRequestId) ? incomingRequestId : crypto.randomUUID();
    const note: RequestNote = { requestId };
    const route = routeTemplate(pathname);
    return {
      note,
      failed: (error) => log.error({ err: error, requestId }, 'unhandled error while answering a request'),
      finish(status) {
        const seconds = (performance.now() - started) / 1000;
        deps.metrics.httpRequest(method, route, status, seconds);
        const line = {
          requestId,
          method,
          route,
          status,
          durationMs: Math.round(seconds * 10_000) / 10,
          ...(note.operation ? { operation: note.operation } : {}),
        };
        if (status >= 500) lines.error(line, 'request');
        else if (quietRoutes.has(route)) lines.debug(line, 'request');
        else lines.info(line, 'request');
      },
    };
  };
}

/** Wraps a fetch handler with `observe`; the answer carries the request id in X-Request-Id. */
export function observeRequests<Rest extends unknown[]>(
  handle: (request: Request, ...rest: Rest) => Promise<Response>,
  observe: RequestObserver,
): (request: Request, ...rest: Rest) => Promise<Response> {
  return async (request, ...rest) => {
    const observed = observe(request.method, new URL(request.url).pathname, request.headers.get('x-request-id'));
    notes.set(request, observed.note);
    let response: Response;
    try {
      response = await handle(request, ...rest);
    } catch (error) {
      observed.failed(error);
      response = new Response(internalErrorBody, { status: 500, headers: { 'content-type': 'application/json; charset=utf-8' } });
    }
    observed.finish(response.status);
    return withHeader(response, 'x-request-id', observed.note.requestId);
  };
}
