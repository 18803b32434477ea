import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError, type DocumentNode, type ExecutionArgs } from 'graphql';
import { CloseCode, handleProtocols, makeServer } from 'graphql-ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Authenticator, Caller } from '../auth';
import { StoreUnavailableError } from '../errors';
import { crossSiteRefusal, isCrossSiteBrowserRequest } from '../http-guards';
import type { Logger } from '../logger';
import { describeOperation } from '../operations/graphql-plugins';
import type { GatewayMetrics } from '../operations/metrics';
import type { RequestObserver } from '../operations/request-log';
import type { GraphQLHandler, ServerContext } from './yoga';

/** At most this many operations run at once on one connection: each subscription holds a listener and memory. */
export const maxOperationsPerConnection = 100;

interface Connection {
  id: string;
  socket: WebSocket;
  opened: number;
  /** Kept in memory only, to check the token again while the connection lives; never logged. */
  token?: string;
  caller?: Caller;
  operations: number;
  running: Map<string, { label: string; started: number }>;
}

interface Extra {
  connection: Connection;
  request: IncomingMessage;
}

type Enveloped = ReturnType<GraphQLHandler['getEnveloped']>;

const jsonHeaders = 'Content-Type: application/json; charset=utf-8';

/** Answers an upgrade that is refused with a plain HTTP response, as the HTTP API would, and drops the socket. */
function refuseUpgrade(socket: Duplex, status: number, reason: string, body: unknown): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n${jsonHeaders}\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

/**
 * A browser always sends Origin on a WebSocket handshake, and the handshake is not bound by CORS: without this check
 * any page could open a socket to the gateway. Non-browser clients send no Origin. Same origin means the page was
 * served by this host (GraphiQL, the console).
 */
function isCrossSiteUpgrade(request: IncomingMessage): boolean {
  if (isCrossSiteBrowserRequest(request.headers['sec-fetch-site'])) return true;
  const origin = request.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== request.headers.host;
  } catch {
    return true;
  }
}

const tokenOf = (params: Readonly<Record<string, unknown>> | undefined, request: IncomingMessage): string | undefined => {
  const entry = params && Object.entries(params).find(([key]) => key.toLowerCase() === 'ops-token');
  if (entry && typeof entry[1] === 'string') return entry[1];
  const header = request.headers['ops-token'];
  return typeof header === 'string' ? header : undefined;
};

/**
 * GraphQL over WebSocket (the graphql-ws protocol, `graphql-transport-ws`) at /graphql, beside SSE, for Apollo Client
 * and urql. The token comes in `connectionParams` (`{"OPS-Token": "…"}`), is checked before the connection is
 * acknowledged (4403 when missing or wrong) and again while it lives: a revoked token's connection is closed with 4403.
 * Each operation goes through yoga's envelop pipeline, so it meets the same limits, masking and metrics as over HTTP.
 */
export function createWebSocketTransport(deps: {
  yoga: GraphQLHandler;
  authenticator: Authenticator;
  logger: Logger;
  metrics: GatewayMetrics;
  observe: RequestObserver;
  bodyLimitBytes: number;
  /** How often every open connection's token is checked again (revocations made on other replicas). */
  tokenRecheckMs: number;
  /** Ping interval; a peer that does not answer within it is dropped. */
  keepAliveMs?: number;
}) {
  const { yoga, authenticator, metrics, observe } = deps;
  const log = deps.logger.child({ component: 'websocket' });
  const keepAliveMs = deps.keepAliveMs ?? 12_000;
  const connections = new Set<Connection>();
  const enveloped = new WeakMap<object, Enveloped>();
  const sockets = new WebSocketServer({
    noServer: true,
    maxPayload: deps.bodyLimitBytes,
    handleProtocols,
    // Compression buys little on small JSON messages and costs memory per connection.
    perMessageDeflate: false,
  });

  const finishOperation = (connection: Connection, id: string, outcome: 'completed' | 'error') => {
    const running = connection.running.get(id);
    if (!running) return;
    connection.running.delete(id);
    log.info(
      {
        requestId: connection.id,
        operationId: id.slice(0, 64),
        operation: running.label,
        outcome,
        durationMs: Math.round((performance.now() - running.started) * 10) / 10,
      },
      'websocket operation',
    );
  };

  const server = makeServer<Record<string, unknown> | undefined, Extra>({
    async onConnect(ctx) {
      const { connection, request } = ctx.extra;
      connection.token = tokenOf(ctx.connectionParams, request);
      connection.caller = await authenticator.authenticate(connection.token);
      if (!connection.caller) {
        metrics.websocketRefused('unauthenticated');
        log.info({ requestId: connection.id }, 'websocket refused: missing or unknown OPS-Token');
        return false;
      }
      return true;
    },
    async onSubscribe(ctx, id, payload) {
      const { connection } = ctx.extra;
      const caller = connection.caller!;
      // Counted before the first await: a burst of subscribe messages is handled concurrently.
      if (connection.running.size >= maxOperationsPerConnection) {
        return [
          new GraphQLError(`At most ${maxOperationsPerConnection} operations may run at once on one connection`, {
            extensions: { code: 'RATE_LIMITED' },
          }),
        ];
      }
      const started = performance.now();
      connection.running.set(id, { label: 'unknown (unknown)', started });
      const token = connection.token;
      const envelope = yoga.getEnveloped<ServerContext>({
        caller,
        transport: 'websocket',
        reauthenticate: async () => (await authenticator.authenticate(token)) !== undefined,
      });
      let document: DocumentNode;
      try {
        // The armor's limits refuse some documents by throwing from parse or validate, as they do over HTTP.
        document = envelope.parse(payload.query);
        const errors = envelope.validate(envelope.schema, document);
        if (errors.length > 0) {
          connection.running.delete(id);
          return errors;
        }
      } catch (error) {
        connection.running.delete(id);
        if (error instanceof GraphQLError) return [error];
        throw error;
      }
      const { type, field } = describeOperation(document, payload.operationName);
      connection.running.set(id, { label: `${type} ${field}`, started });
      connection.operations += 1;
      const contextValue = await envelope.contextFactory();
      enveloped.set(contextValue, envelope);
      const args: ExecutionArgs = {
        schema: envelope.schema,
        document,
        contextValue,
        operationName: payload.operationName,
        variableValues: payload.variables,
      };
      return args;
    },
    execute: (args) => enveloped.get(args.contextValue as object)!.execute(args),
    subscribe: (args) => enveloped.get(args.contextValue as object)!.subscribe(args),
    onError(ctx, id) {
      finishOperation(ctx.extra.connection, id, 'error');
    },
    onComplete(ctx, id) {
      finishOperation(ctx.extra.connection, id, 'completed');
    },
  });

  const accept = (socket: WebSocket, request: IncomingMessage, connection: Connection) => {
    connections.add(connection);
    metrics.websocketOpened();
    const internalError = (error: unknown) => {
      if (error instanceof StoreUnavailableError) {
        // The token could not be looked up (a storage fault): 1013 Try Again Later, which clients retry, not 4403.
        socket.close(1013, 'Try again later');
        return;
      }
      log.error({ err: error, requestId: connection.id }, 'unexpected error on a websocket connection');
      socket.close(CloseCode.InternalServerError, 'Internal server error');
    };
    // A message over maxPayload closes the socket with 1009 and reports it here: the peer's fault, not ours.
    socket.on('error', (error: Error & { code?: string }) => {
      if (error.code?.startsWith('WS_ERR_')) log.info({ requestId: connection.id, code: error.code }, 'websocket protocol error from the peer');
      else internalError(error);
    });
    let pongWait: NodeJS.Timeout | undefined;
    const ping = setInterval(() => {
      if (socket.readyState !== socket.OPEN) return;
      pongWait = setTimeout(() => socket.terminate(), keepAliveMs);
      socket.once('pong', () => clearTimeout(pongWait));
      socket.ping();
    }, keepAliveMs);
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) =>
          new Promise<void>((resolve, reject) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            socket.send(data, (error) => (error ? reject(error) : resolve()));
          }),
        close: (code, reason) => socket.close(code, reason),
        onMessage: (handle) =>
          socket.on('message', (data) => {
            handle(String(data)).catch(internalError);
          }),
      },
      { connection, request },
    );
    socket.once('close', (code, reason) => {
      clearInterval(ping);
      clearTimeout(pongWait);
      connections.delete(connection);
      metrics.websocketClosed();
      for (const id of connection.running.keys()) finishOperation(connection, id, 'completed');
      void closed(code, String(reason));
      log.info(
        {
          requestId: connection.id,
          caller: connection.caller?.id,
          closeCode: code,
          operations: connection.operations,
          durationMs: Math.round(performance.now() - connection.opened),
        },
        'websocket closed',
      );
    });
  };

  const closeUnder = (matches: (connection: Connection) => boolean, reason: string) => {
    for (const connection of connections) {
      if (matches(connection)) {
        log.info({ requestId: connection.id, caller: connection.caller?.id }, `websocket closed: ${reason}`);
        connection.socket.close(CloseCode.Forbidden, reason);
      }
    }
  };
  const stopListening = authenticator.tokens.onRevoked((tokenId) =>
    closeUnder((connection) => connection.caller?.id === tokenId, 'Token revoked'),
  );
  const recheck = setInterval(async () => {
    const verdicts = new Map<string | undefined, Promise<boolean>>();
    for (const connection of connections) {
      if (!connection.caller) continue;
      if (!verdicts.has(connection.token)) {
        verdicts.set(connection.token, authenticator.authenticate(connection.token).then((caller) => caller !== undefined, () => true));
      }
      if (!(await verdicts.get(connection.token))) closeUnder((other) => other === connection, 'Token revoked');
    }
  }, deps.tokenRecheckMs);
  recheck.unref();

  return {
    /** For node:http's 'upgrade' event. Anything but /graphql, or a cross-site browser, is refused with HTTP. */
    upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
      socket.on('error', () => socket.destroy());
      const pathname = new URL(request.url ?? '/', 'http://upgrade.invalid').pathname;
      const requestId = request.headers['x-request-id'];
      const observed = observe(request.method ?? 'GET', pathname, typeof requestId === 'string' ? requestId : undefined);
      if (pathname !== '/graphql' || request.method !== 'GET') {
        refuseUpgrade(socket, 404, 'Not Found', { error: 'not found' });
        observed.finish(404);
        return;
      }
      if (isCrossSiteUpgrade(request)) {
        metrics.websocketRefused('cross_site');
        refuseUpgrade(socket, 403, 'Forbidden', { errors: [{ message: crossSiteRefusal, extensions: { code: 'FORBIDDEN' } }] });
        observed.finish(403);
        return;
      }
      sockets.handleUpgrade(request, socket, head, (webSocket) => {
        observed.finish(101);
        accept(webSocket, request, {
          id: observed.note.requestId,
          socket: webSocket,
          opened: performance.now(),
          operations: 0,
          running: new Map(),
        });
      });
    },
    /** Closes every connection with 1001 (Going Away): graphql-ws clients reconnect, to another replica if there is one. */
    async close(): Promise<void> {
      clearInterval(recheck);
      stopListening();
      const closing = [...connections].map(
        (connection) => new Promise<void>((resolve) => {
          connection.socket.once('close', () => resolve());
          connection.socket.close(1001, 'Going away');
          setTimeout(() => {
            connection.socket.terminate();
            resolve();
          }, 1000).unref();
        }),
      );
      await Promise.all(closing);
      await new Promise<void>((resolve) => sockets.close(() => resolve()));
    },
  };
}
