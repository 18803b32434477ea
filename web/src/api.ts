import type { TypedDocumentString } from './graphql/generated';
import { readToken } from './session';

/** The gateway refused the token (HTTP 401). */
export class UnauthorizedError extends Error {
  constructor() {
    super('unauthorized');
    this.name = 'UnauthorizedError';
  }
}

/** The request failed: the network, an HTTP error, or GraphQL errors without data. */
export class RequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RequestError';
  }
}

interface GraphQLPayload<T> {
  data?: T | null;
  errors?: { message: string }[];
}

let unauthorizedListener: (() => void) | undefined;
/** Called when any request is answered 401 after sign-in (a revoked token): the app signs out. */
export function onUnauthorized(listener: () => void): void {
  unauthorizedListener = listener;
}

const headersFor = (token: string, accept: string) => ({
  'content-type': 'application/json',
  accept,
  'OPS-Token': token,
});

/** Runs a query or mutation with the signed-in token (or `token`), typed by its generated document. */
export async function gql<R, V>(
  document: TypedDocumentString<R, V>,
  variables: V,
  options: { token?: string; signal?: AbortSignal } = {},
): Promise<R> {
  const token = options.token ?? readToken();
  if (!token) throw new UnauthorizedError();
  let response: Response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: headersFor(token, 'application/graphql-response+json, application/json'),
      body: JSON.stringify({ query: document.toString(), variables }),
      credentials: 'omit',
      cache: 'no-store',
      signal: options.signal,
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new RequestError((error as Error).message || 'network error');
  }
  if (response.status === 401) {
    if (!options.token) unauthorizedListener?.();
    throw new UnauthorizedError();
  }
  let payload: GraphQLPayload<R>;
  try {
    payload = (await response.json()) as GraphQLPayload<R>;
  } catch {
    throw new RequestError(`HTTP ${response.status}`);
  }
  if (payload.data) return payload.data;
  throw new RequestError(payload.errors?.map((error) => error.message).join('; ') || `HTTP ${response.status}`);
}

export type LiveState = 'connecting' | 'live' | 'offline';

export interface SubscriptionHandlers<R> {
  next(data: R): void;
  /** The stream's state: shown as the Live indicator. `reconnected` is true when it is up again after a drop. */
  state?(state: LiveState, reconnected: boolean): void;
  /** The server ended the stream (a delivery followed by id reached a final state). */
  complete?(): void;
}

/**
 * A GraphQL subscription over server-sent events: POST /graphql with `Accept: text/event-stream` and the OPS-Token
 * header, read with fetch and a stream reader (EventSource cannot send headers). Reconnects with backoff when the
 * stream drops; the returned function stops it.
 */
export function subscribe<R, V>(document: TypedDocumentString<R, V>, variables: V, handlers: SubscriptionHandlers<R>): () => void {
  let stopped = false;
  let controller: AbortController | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  let everOpen = false;

  const retryLater = () => {
    if (stopped) return;
    handlers.state?.('offline', false);
    const delay = Math.min(15_000, 500 * 2 ** Math.min(failures, 5)) * (0.75 + Math.random() * 0.5);
    failures += 1;
    timer = setTimeout(connect, delay);
  };

  const connect = async () => {
    if (stopped) return;
    const token = readToken();
    if (!token) return;
    controller = new AbortController();
    if (!everOpen) handlers.state?.('connecting', false);
    try {
      const response = await fetch('/graphql', {
        method: 'POST',
        headers: headersFor(token, 'text/event-stream'),
        body: JSON.stringify({ query: document.toString(), variables }),
        credentials: 'omit',
        cache: 'no-store',
        signal: controller.signal,
      });
      if (response.status === 401) {
        stopped = true;
        unauthorizedListener?.();
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      failures = 0;
      handlers.state?.('live', everOpen);
      everOpen = true;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':') || line === '') continue;
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') event = text;
            else if (field === 'data') data.push(text);
          }
          if (event === 'complete') {
            stopped = true;
            controller.abort();
            handlers.complete?.();
            return;
          }
          if (data.length === 0) continue;
          const payload = JSON.parse(data.join('\n')) as GraphQLPayload<R>;
          if (payload.data) handlers.next(payload.data);
          else if (payload.errors) {
            // Refused (e.g. a token that may not read): retrying would not help.
            stopped = true;
            handlers.state?.('offline', false);
            return;
          }
        }
      }
      retryLater();
    } catch (error) {
      if (stopped) return;
      retryLater();
    }
  };

  void connect();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    controller?.abort();
  };
}
