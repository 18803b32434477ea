import type { IncomingMessage, ServerResponse } from 'node:http';
import { internalErrorBody, type RequestObserver } from '../operations/request-log';
import { fetchLegacyRequest, nodeLegacyRequest } from './legacy-params';
import { isLegacyPath, type LegacyRouter } from './legacy-routes';

/** app.fetch's entry: the routes' reply as a fetch Response. */
export async function answerFetch(routes: LegacyRouter, request: Request, url: URL): Promise<Response> {
  const reply = await routes(fetchLegacyRequest(request, url));
  return new Response(reply.body, { status: reply.status, headers: reply.headers });
}

/** A target that names a route as written: nothing in its path for the URL parser to normalise. */
const plainTarget = /^\/api\/third\/[A-Za-z]+\/[A-Za-z]+\/?(?=[?#]|$)/;

/**
 * The path and query string of a node:http request target, when the legacy routes own its path; undefined for every
 * other path. A plain target's query is taken as written: decoded, it gives the parameters the URL parser's
 * re-encoded one gives (that parser only percent-encodes characters the decoding gives back).
 */
export function legacyTarget(target: string | undefined): { pathname: string; query: string } | undefined {
  if (!target?.startsWith('/api/third')) return undefined;
  const plain = plainTarget.exec(target)?.[0];
  if (plain !== undefined) {
    const fragment = target.indexOf('#', plain.length);
    const end = fragment < 0 ? target.length : fragment;
    return { pathname: plain, query: target[plain.length] === '?' ? target.slice(plain.length + 1, end) : '' };
  }
  const url = new URL(target, 'http://gateway');
  return isLegacyPath(url.pathname) ? { pathname: url.pathname, query: url.search.slice(1) } : undefined;
}

/**
 * The listener's entry: served straight from node:http's objects, without building fetch Requests and Responses,
 * observed (request id, log line, metrics) as every request is.
 */
export function serveOverNode(routes: LegacyRouter, observe: RequestObserver) {
  return (incoming: IncomingMessage, response: ServerResponse, target: { pathname: string; query: string }): void => {
    const request = nodeLegacyRequest(incoming, target.pathname, target.query);
    const observed = observe(request.method, request.pathname, request.header('x-request-id'));
    const write = (status: number, headers: Record<string, string>, body: string) => {
      observed.finish(status);
      if (response.writableEnded || response.destroyed) return;
      headers['x-request-id'] = observed.note.requestId;
      response.writeHead(status, headers).end(body);
    };
    routes(request).then(
      (reply) => write(reply.status, reply.headers, reply.body),
      (error: unknown) => {
        observed.failed(error);
        write(500, { 'content-type': 'application/json; charset=utf-8' }, internalErrorBody);
      },
    );
  };
}
