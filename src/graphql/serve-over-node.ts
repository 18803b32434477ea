import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Authenticator } from '../auth';
import { errorCatalog, StoreUnavailableError } from '../errors';
import { isCrossSiteBrowserRequest } from '../http-guards';
import { internalErrorBody, type RequestObserver } from '../operations/request-log';
import type { GraphQLHandler } from './yoga';

const unauthenticatedBody = JSON.stringify({
  errors: [{ message: errorCatalog.UNAUTHENTICATED.description, extensions: { code: 'UNAUTHENTICATED' } }],
});

const jsonHeaders = { 'content-type': 'application/json; charset=utf-8' };

/** A request that failed as a whole because the database could not be used: 503 with Retry-After. */
export const storeUnavailableInit = (error: StoreUnavailableError) => ({
  status: 503,
  headers: { ...jsonHeaders, 'retry-after': String(error.retryAfterSeconds) },
});

export const storeUnavailableBody = (error: StoreUnavailableError) =>
  JSON.stringify({ errors: [{ message: error.message, extensions: { code: error.code } }] });

/**
 * The common GraphQL request, a JSON POST framed by a Content-Length within the limit, sent by an API client (not a
 * browser of another site) and answered with one JSON body: authenticated and handed to yoga's node:http entry
 * straight from node's objects, without a second fetch adapter around it. Anything else (GET, chunked or oversized
 * bodies, event streams, cross-site browser requests) returns false and takes the app's fetch path, which answers it.
 */
export function serveGraphqlOverNode(deps: {
  yoga: GraphQLHandler;
  authenticator: Authenticator;
  observe: RequestObserver;
  bodyLimitBytes: number;
}) {
  const { yoga, authenticator, observe, bodyLimitBytes } = deps;
  return (request: IncomingMessage, response: ServerResponse): boolean => {
    const headers = request.headers;
    const length = headers['content-length'];
    if (
      request.method !== 'POST' ||
      request.url !== '/graphql' ||
      length === undefined ||
      !(Number(length) <= bodyLimitBytes) ||
      !headers['content-type']?.startsWith('application/json') ||
      /event-stream|multipart/.test(headers.accept ?? '') ||
      isCrossSiteBrowserRequest(headers['sec-fetch-site'])
    ) {
      return false;
    }
    const observed = observe('POST', '/graphql', headers['x-request-id'] as string | undefined);
    response.setHeader('x-request-id', observed.note.requestId);
    response.once('close', () => observed.finish(response.statusCode));
    const token = headers['ops-token'];
    authenticator
      .authenticate(typeof token === 'string' ? token : null)
      .then((caller) => {
        if (caller) return yoga(request, response, { caller, requestNote: observed.note });
        request.resume();
        response.writeHead(401, jsonHeaders).end(unauthenticatedBody);
      })
      .catch((error: unknown) => {
        if (error instanceof StoreUnavailableError && !response.headersSent) {
          request.resume();
          const { status, headers: answerHeaders } = storeUnavailableInit(error);
          response.writeHead(status, answerHeaders).end(storeUnavailableBody(error));
          return;
        }
        observed.failed(error);
        if (!response.headersSent) response.writeHead(500, jsonHeaders);
        if (!response.writableEnded) response.end(internalErrorBody);
      });
    return true;
  };
}
