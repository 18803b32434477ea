import { isAdmin, parseScopes, type CreatedToken } from '../../api-tokens';
import type { Caller } from '../../auth';
import type { ApiTokenRow } from '../../db/schema';
import { ForbiddenError } from '../../errors';
import { builder } from '../builder';
import { ChannelEnum } from './delivery';
import { createTokenErrorTypes, revokeTokenErrorTypes } from './errors';
import { ReadScopeEnum } from './viewer';

const optionalDate = (value: number | null) => (value == null ? null : new Date(value));

// A row whose stored scopes are not valid is refused at authentication: it is shown as what it may do, nothing.
const scopesOf = (row: ApiTokenRow) => parseScopes(row.scopes) ?? { channels: [], read: 'none' as const };

const ApiTokenRef = builder.objectRef<ApiTokenRow>('ApiToken').implement({
  description: 'A stored token (OPS_TOKENS entries are not stored). Never the token itself or its hash.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    channels: t.field({ type: [ChannelEnum], resolve: (row) => scopesOf(row).channels }),
    read: t.field({ type: ReadScopeEnum, resolve: (row) => scopesOf(row).read }),
    createdAt: t.field({ type: 'DateTime', resolve: (row) => new Date(row.createdAt) }),
    lastUsedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Written at most once a minute per token',
      resolve: (row) => optionalDate(row.lastUsedAt),
    }),
    revokedAt: t.field({ type: 'DateTime', nullable: true, resolve: (row) => optionalDate(row.revokedAt) }),
  }),
});

const CreatedApiTokenRef = builder.objectRef<CreatedToken>('CreatedApiToken').implement({
  fields: (t) => ({
    token: t.exposeString('token', { description: 'Shown only this once' }),
    apiToken: t.field({ type: ApiTokenRef, resolve: (created) => created.row }),
  }),
});

const CreateApiTokenInput = builder.inputType('CreateApiTokenInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: '1 to 64 letters, digits, . _ or -, not starting with tok_; unique, revoked tokens included' }),
    channels: t.field({ type: [ChannelEnum], required: true, description: 'Channels it may send on (and cancel or retry on)' }),
    read: t.field({ type: ReadScopeEnum, required: true }),
  }),
});

function requireAdmin(caller: Caller): void {
  if (!isAdmin(caller.scopes)) throw new ForbiddenError('Only a token with every channel and read ALL may manage API tokens');
}

builder.queryField('apiTokens', (t) =>
  t.field({
    type: [ApiTokenRef],
    description: 'Every stored token, revoked ones included, newest first. Admin tokens only (others get FORBIDDEN).',
    resolve: async (_root, _args, context) => {
      requireAdmin(context.caller);
      return (await context.tokens.list()).sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
    },
  }),
);

builder.mutationFields((t) => ({
  createApiToken: t.field({
    type: CreatedApiTokenRef,
    description: 'Create a token; only its SHA-256 hash is kept, so the answer is the one place it is ever shown. Admin tokens only.',
    errors: { types: createTokenErrorTypes, directResult: true },
    args: { input: t.arg({ type: CreateApiTokenInput, required: true }) },
    resolve: async (_root, { input }, context) => {
      requireAdmin(context.caller);
      const created = await context.tokens.create(input.name, { channels: input.channels, read: input.read });
      context.audit.info({ tokenId: created.row.id, tokenName: created.row.name, scopes: created.row.scopes, by: context.caller.id }, 'API token created');
      return created;
    },
  }),
  revokeApiToken: t.field({
    type: ApiTokenRef,
    description: 'Revoke a token by id: its next request is refused. A token may revoke itself. Admin tokens only.',
    errors: { types: revokeTokenErrorTypes, directResult: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, context) => {
      requireAdmin(context.caller);
      const revoked = await context.tokens.revoke(String(id));
      context.audit.info({ tokenId: revoked.id, tokenName: revoked.name, by: context.caller.id }, 'API token revoked');
      return revoked;
    },
  }),
}));
