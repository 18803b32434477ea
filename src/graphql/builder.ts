import SchemaBuilder from '@pothos/core';
import ErrorsPlugin from '@pothos/plugin-errors';
import RelayPlugin from '@pothos/plugin-relay';
import type { ApiTokens } from '../api-tokens';
import type { Caller } from '../auth';
import type { DeliveryEvents } from '../delivery/events';
import type { DeliveryService } from '../delivery/service';
import type { Logger } from '../logger';

export interface GraphQLContext {
  caller: Caller;
  service: DeliveryService;
  events: DeliveryEvents;
  tokens: ApiTokens;
  /** For what the schema's resolvers must leave a trace of (a token made or revoked). */
  audit: Logger;
  /** The Idempotency-Key header, when the request carried one. */
  idempotencyKey?: string;
  /** Checks the request's token again (long-lived subscriptions stop once it is revoked). */
  reauthenticate: () => Promise<boolean>;
}

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    JSON: { Input: unknown; Output: unknown };
    ID: { Input: string; Output: string };
  };
  DefaultFieldNullability: false;
}>({
  plugins: [ErrorsPlugin, RelayPlugin],
  defaultFieldNullability: false,
  errors: { defaultTypes: [] },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    // Delivery ids are already unique and typed by their prefix (dlv_…): the same id in GraphQL, REST and logs.
    encodeGlobalID: (_typename, id) => String(id),
    // Delivery is the only node type: any other id is simply not found, so node(id) answers null as Relay expects.
    decodeGlobalID: (globalID) => ({ typename: 'Delivery', id: globalID }),
    nodeQueryOptions: { nullable: true },
    nodesQueryOptions: false,
  },
});
