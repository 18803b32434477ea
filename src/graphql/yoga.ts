import { createYoga } from 'graphql-yoga';
import type { Caller } from '../auth';
import type { Config } from '../config';
import type { DeliveryEvents } from '../delivery/events';
import type { DeliveryService } from '../delivery/service';
import type { Logger } from '../logger';
import type { GraphQLContext } from './builder';
import { schema } from './schema';

export interface ServerContext {
  caller: Caller;
}

export function createGraphQLHandler(deps: { config: Config; service: DeliveryService; events: DeliveryEvents; logger: Logger }) {
  const { service, events, logger } = deps;
  return createYoga<ServerContext, GraphQLContext>({
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
}
