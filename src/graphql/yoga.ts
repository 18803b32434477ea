import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { GraphQLError, NoSchemaIntrospectionCustomRule, type ValidationContext } from 'graphql';
import { createYoga, maskError, type Plugin } from 'graphql-yoga';
import type { Authenticator, Caller } from '../auth';
import type { Config } from '../config';
import type { DeliveryEvents } from '../delivery/events';
import type { DeliveryService } from '../delivery/service';
import { GatewayError, StoreUnavailableError } from '../errors';
import type { Logger } from '../logger';
import type { RequestNote } from '../operations/request-log';
import type { GraphQLContext } from './builder';
import { schema } from './schema';

export interface ServerContext {
  caller: Caller;
  /** The request's entry in the request log, which the operation metrics name the operation in. */
  requestNote?: RequestNote;
  /** The gateway's own warm-up at start (app.warmUp): not a caller's operation, so not counted. */
  warmUp?: true;
  /** Set for operations that do not come in an HTTP request (WebSocket); HTTP tells plain requests from SSE. */
  transport?: GraphQLTransport;
  /** How a connection that outlives its request checks its token again; HTTP reads the request's header. */
  reauthenticate?: () => Promise<boolean>;
}

export type GraphQLTransport = 'http' | 'sse' | 'websocket';

export type GraphQLHandler = ReturnType<typeof createGraphQLHandler>;

/**
 * Limits on every operation (graphql-armor). The largest legitimate query, a page of 100 deliveries with every field
 * and attemptLog, has depth 5, 48 tokens and cost 11375 (`first: N` multiplies the cost of what it selects);
 * introspection is exempt from depth and cost and has 183 tokens.
 */
export const graphqlLimits = { maxDepth: 8, maxAliases: 15, maxCost: 20_000, maxTokens: 1000, maxDirectives: 10 } as const;

/** graphql-js quotes a refused variable value in its message; a misplaced robot secret or code must not come back. */
export function withoutVariableValues(error: GraphQLError): GraphQLError {
  const variable = /^Variable "\$(\w+)" got invalid value /.exec(error.message)?.[1];
  if (!variable) return error;
  const at = / at "([\w.[\]]+)"; /.exec(error.message)?.[1];
  const reason = (error.originalError?.message ?? 'invalid value')
    .replace(/Value ".*" does not exist/s, 'Value does not exist')
    .replace(/: .*$/s, '.');
  return new GraphQLError(`Variable "$${variable}" got invalid value${at ? ` at "${at}"` : ''}; ${reason}`, {
    nodes: error.nodes,
    extensions: error.extensions,
  });
}

function variableValuesHidden(): Plugin {
  return {
    onExecute: () => ({
      onExecuteDone({ result, setResult }) {
        if ('errors' in result && result.errors?.length) setResult({ ...result, errors: result.errors.map(withoutVariableValues) });
      },
    }),
  };
}

/**
 * A GatewayError thrown where no error union catches it (deliveries with a token that may not read, say) keeps its
 * message and code: those are written for callers. Anything else becomes "Unexpected error.", even with
 * NODE_ENV=development (isDev false): no message, stack, SQL or path reaches the caller; the log has them.
 */
const maskUnexpected: typeof maskError = (error, message) => {
  const original = error instanceof GraphQLError ? error.originalError : error;
  if (original instanceof GatewayError && error instanceof GraphQLError) {
    // The database could not be used: the request fails as a whole with 503, and says when to try again.
    const http =
      original instanceof StoreUnavailableError ? { status: 503, headers: { 'retry-after': String(original.retryAfterSeconds) } } : undefined;
    return new GraphQLError(original.message, { nodes: error.nodes, path: error.path, extensions: { code: original.code, ...(http && { http }) } });
  }
  return maskError(error, message, false);
};

/**
 * graphql-armor throws a refusal out of validation by default, which yoga answers with HTTP 200 and no `data`, even to
 * a client that accepts application/graphql-response+json (the GraphQL over HTTP spec wants a 4xx there). Reported as
 * a validation error it gets yoga's 400 and code GRAPHQL_VALIDATION_FAILED. The other rules then still walk the
 * document, which maxTokens keeps small.
 */
const refuseAsValidationError = {
  propagateOnRejection: false,
  onReject: [
    (context: ValidationContext | null, error: GraphQLError) => {
      if (!context) throw error;
      context.reportError(error);
    },
  ],
};

function introspectionDisabled(): Plugin {
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(NoSchemaIntrospectionCustomRule);
    },
  };
}

export function createGraphQLHandler(deps: {
  config: Config;
  service: DeliveryService;
  events: DeliveryEvents;
  authenticator: Authenticator;
  logger: Logger;
  /** Added by the app: operation metrics and the stats context (src/operations/graphql-plugins.ts). */
  plugins?: Plugin[];
}) {
  const { config, service, events, logger, authenticator } = deps;
  const audit = logger.child({ component: 'audit' });
  return createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    // The app refuses a body over BODY_LIMIT_BYTES before yoga sees the request; yoga's own 25 MB limit would only
    // wrap every body in another stream and Request.
    maxRequestBodySize: false,
    // GraphiQL's scripts and styles served from the gateway itself, not a CDN: it works on a closed network.
    // Loaded on the first page view: the module holds ~30 MB of strings that a gateway nobody browses need not carry.
    renderGraphiQL: (options) => import('@graphql-yoga/render-graphiql').then((module) => module.renderGraphiQL(options)),
    logging: logger.child({ component: 'graphql' }),
    maskedErrors: { isDev: false, maskError: maskUnexpected },
    // No CORS headers at all, so a page of another origin can neither send OPS-Token (a header that needs a
    // preflight) nor read an answer. Yoga's CSRF-prevention plugin would add nothing: it lets through any request
    // that carries a non-simple header, and every request that gets here carries OPS-Token. See SECURITY.md.
    cors: false,
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: graphqlLimits.maxDepth, ...refuseAsValidationError },
        maxAliases: { n: graphqlLimits.maxAliases, ...refuseAsValidationError },
        costLimit: { maxCost: graphqlLimits.maxCost, ...refuseAsValidationError },
        // Checked while parsing, before there is a document to validate: yoga already answers a parse error with 400.
        maxTokens: { n: graphqlLimits.maxTokens },
        maxDirectives: { n: graphqlLimits.maxDirectives, ...refuseAsValidationError },
        // Without introspection, "Did you mean …?" would still spell out the schema.
        blockFieldSuggestion: { enabled: !config.introspection },
      }),
      variableValuesHidden(),
      ...(config.introspection ? [] : [introspectionDisabled()]),
      ...(deps.plugins ?? []),
    ],
    graphiql: config.introspection && {
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
    context: ({ caller, request, reauthenticate }) => ({
      caller,
      service,
      events,
      tokens: authenticator.tokens,
      audit,
      // Over WebSocket there is no request: an idempotency key comes in the send's input.
      idempotencyKey: request?.headers.get('idempotency-key') ?? undefined,
      reauthenticate: reauthenticate ?? (async () => (await authenticator.authenticate(request.headers.get('ops-token'))) !== undefined),
    }),
  });
}
