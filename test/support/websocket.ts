import { createClient, type Client, type FormattedExecutionResult as ExecutionResult } from 'graphql-ws';
import WebSocket from 'ws';

export interface WebSocketClient {
  client: Client;
  /** Close events the client saw, in order (code and reason). */
  closes: { code: number; reason: string }[];
  /** Resolves with the first close event. */
  closed: Promise<{ code: number; reason: string }>;
  dispose(): Promise<void>;
}

/**
 * The graphql-ws client (what Apollo Client's GraphQLWsLink and urql use) over the `ws` package, connecting at once
 * and never retrying: a close is reported, not papered over.
 */
export function webSocketClient(baseUrl: string, connectionParams: Record<string, unknown> | undefined): WebSocketClient {
  const closes: { code: number; reason: string }[] = [];
  let closedWith!: (event: { code: number; reason: string }) => void;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => (closedWith = resolve));
  const client = createClient({
    url: `${baseUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams,
    lazy: false,
    retryAttempts: 0,
    onNonLazyError: () => {},
    on: {
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string };
        closes.push({ code, reason: String(reason) });
        closedWith({ code, reason: String(reason) });
      },
    },
  });
  return {
    client,
    closes,
    closed,
    async dispose() {
      await client.dispose();
    },
  };
}

export interface Subscription<T> {
  /** Every result received so far. */
  results: ExecutionResult<T, unknown>[];
  /** Resolves when the operation completes, rejects with what the error sink got (GraphQL errors or a close event). */
  done: Promise<void>;
  /** Resolves with the next result not yet taken. */
  next(): Promise<ExecutionResult<T, unknown>>;
  unsubscribe(): void;
}

export function subscribe<T = Record<string, any>>(
  client: Client,
  query: string,
  variables?: Record<string, unknown>,
): Subscription<T> {
  const results: ExecutionResult<T, unknown>[] = [];
  const waiting: ((result: ExecutionResult<T, unknown>) => void)[] = [];
  let taken = 0;
  let unsubscribe!: () => void;
  const done = new Promise<void>((resolve, reject) => {
    unsubscribe = client.subscribe<T>(
      { query, variables },
      {
        next: (result) => {
          results.push(result);
          waiting.shift()?.(result);
        },
        error: reject,
        complete: resolve,
      },
    );
  });
  done.catch(() => {});
  return {
    results,
    done,
    next() {
      if (taken < results.length) return Promise.resolve(results[taken++]);
      taken += 1;
      return new Promise((resolve) => waiting.push(resolve));
    },
    unsubscribe,
  };
}

/** One query or mutation over the connection: its single result. */
export async function execute<T = Record<string, any>>(client: Client, query: string, variables?: Record<string, unknown>): Promise<ExecutionResult<T, unknown>> {
  const subscription = subscribe<T>(client, query, variables);
  await subscription.done;
  return subscription.results[0];
}
