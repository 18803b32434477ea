import { isAdmin, type ReadScope } from '../../api-tokens';
import type { Caller } from '../../auth';
import { builder } from '../builder';
import { ChannelEnum } from './delivery';

export const ReadScopeEnum = builder.enumType('ReadScope', {
  description: 'Which deliveries a token may read',
  values: {
    NONE: { value: 'none', description: 'None, not even those it sent' },
    OWN: { value: 'own', description: 'Those it sent' },
    ALL: { value: 'all', description: 'Every delivery' },
  } as const satisfies Record<string, { value: ReadScope; description: string }>,
});

const ViewerRef = builder.objectRef<Caller>('Viewer').implement({
  description: 'Who the OPS-Token belongs to and what it may do',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'The stored token\'s name, or `OPS_TOKENS #<n>` for a configured one' }),
    channels: t.field({
      type: [ChannelEnum],
      description: 'Channels it may send on, and cancel or retry deliveries of',
      resolve: (caller) => caller.scopes.channels,
    }),
    read: t.field({ type: ReadScopeEnum, resolve: (caller) => caller.scopes.read }),
    admin: t.boolean({
      description:
        'Every channel and read ALL (OPS_TOKENS entries, or a stored token with those scopes): may manage tokens',
      resolve: (caller) => isAdmin(caller.scopes),
    }),
  }),
});

builder.queryField('viewer', (t) =>
  t.field({ type: ViewerRef, description: 'The token of this request', resolve: (_root, _args, context) => context.caller }),
);
