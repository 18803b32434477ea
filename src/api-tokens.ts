import crypto from 'node:crypto';
import { z } from 'zod';
import { channels, type ApiTokenRow, type ChannelName } from './db/schema';
import type { Store } from './db/store';
import { InvalidStateError, NotFoundError, ValidationError } from './errors';

/**
 * Stored API tokens (the OPS-Token header): what a token may do, and the one set of rules for making, listing and
 * revoking them, used by `npm run token` and the GraphQL API alike.
 */

export type ReadScope = 'none' | 'own' | 'all';

export interface TokenScopes {
  channels: ChannelName[];
  read: ReadScope;
}

export const fullScopes: TokenScopes = { channels: [...channels], read: 'all' };

export const readScopes = ['none', 'own', 'all'] as const satisfies readonly ReadScope[];

/** Every channel and read `all`: the rights of OPS_TOKENS entries, which include managing tokens. */
export const isAdmin = (scopes: TokenScopes): boolean =>
  scopes.read === 'all' && channels.every((channel) => scopes.channels.includes(channel));

// Stored channels are a list, or "all": every channel the gateway has, those added later included.
const scopesSchema = z.object({ channels: z.union([z.array(z.enum(channels)), z.literal('all')]), read: z.enum(readScopes) });

/** The scopes stored with a token, or undefined when they are not valid (such a token is refused, not widened). */
export function parseScopes(json: string): TokenScopes | undefined {
  try {
    const parsed = scopesSchema.safeParse(JSON.parse(json));
    if (!parsed.success) return undefined;
    return { channels: parsed.data.channels === 'all' ? [...channels] : parsed.data.channels, read: parsed.data.read };
  } catch {
    return undefined;
  }
}

/** Every channel is stored as "all", so that such a token also gets the channels added later. */
export function serializeScopes(scopes: TokenScopes): string {
  const listed = channels.filter((channel) => scopes.channels.includes(channel));
  return JSON.stringify({ channels: listed.length === channels.length ? 'all' : listed, read: scopes.read });
}

export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

export function generateToken(): string {
  return `ngw_${crypto.randomBytes(24).toString('base64url')}`;
}

export const tokenNameRule = '1 to 64 letters, digits, . _ or -, not starting with tok_';

const namePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

// Ids start with tok_ and names may not: `npm run token -- revoke <name|id>` can never mistake one for the other.
export const isTokenName = (name: string): boolean => namePattern.test(name) && !name.startsWith('tok_');

export interface CreatedToken {
  /** The token itself: shown once, never stored. */
  token: string;
  row: ApiTokenRow;
}

export class ApiTokens {
  private readonly revokedListeners = new Set<(tokenId: string) => void>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  /** Every stored token, revoked ones included, oldest first. */
  list(): Promise<ApiTokenRow[]> {
    return this.store.listTokens();
  }

  /**
   * Makes a token and keeps only its SHA-256 hash. The name must follow `tokenNameRule` and not be held by any token,
   * revoked ones included (it names the token in lists and in `revoke`), else a ValidationError on `name`.
   */
  async create(name: string, scopes: TokenScopes): Promise<CreatedToken> {
    if (!isTokenName(name)) throw new ValidationError([{ path: 'name', message: `must be ${tokenNameRule}` }]);
    await this.refuseTaken(name);
    const token = generateToken();
    const row: ApiTokenRow = {
      id: `tok_${crypto.randomBytes(8).toString('hex')}`,
      name,
      tokenHash: hashToken(token),
      scopes: serializeScopes(scopes),
      createdAt: this.now(),
      revokedAt: null,
      lastUsedAt: null,
    };
    try {
      await this.store.insertToken(row);
    } catch (error) {
      // Another request (or replica) took the name since it was checked: the unique index refused this one.
      await this.refuseTaken(name);
      throw error;
    }
    return { token, row };
  }

  /**
   * Revokes a token by id (or, with `byName`, by name too): its next request is refused. NotFoundError when there is
   * no such token, InvalidStateError when it was revoked already.
   */
  async revoke(key: string, options: { byName?: boolean } = {}): Promise<ApiTokenRow> {
    const row = (await this.store.listTokens()).find((candidate) => candidate.id === key || (options.byName && candidate.name === key));
    if (!row) throw new NotFoundError(`No token ${key}`);
    const now = this.now();
    if (row.revokedAt != null || !(await this.store.revokeToken(row.id, now))) {
      throw new InvalidStateError(`Token ${key} was already revoked`);
    }
    for (const listener of this.revokedListeners) listener(row.id);
    return { ...row, revokedAt: now };
  }

  /**
   * Calls `listener` with the id of each token revoked through this object, at once (connections held open under a
   * token close without waiting for their next check). Returns the function that stops listening.
   */
  onRevoked(listener: (tokenId: string) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  private async refuseTaken(name: string): Promise<void> {
    const holder = (await this.store.listTokens()).find((row) => row.name === name);
    if (!holder) return;
    const state = holder.revokedAt == null ? 'an active token' : 'a revoked token';
    throw new ValidationError([{ path: 'name', message: `is taken by ${state} (${holder.id}); choose another name` }]);
  }
}

/**
 * With no OPS_TOKENS and no stored token, creates one with full rights, keeps only its hash and returns the token so
 * that the caller can print it once.
 */
export async function ensureBootstrapToken(store: Store, opsTokens: readonly string[]): Promise<string | undefined> {
  if (opsTokens.length > 0) return undefined;
  if ((await store.listTokens()).length > 0) return undefined;
  try {
    return (await new ApiTokens(store).create('bootstrap', fullScopes)).token;
  } catch (error) {
    // Replicas starting together on an empty shared database: one of them made it (its token is printed there).
    if ((await store.listTokens()).some((row) => row.name === 'bootstrap')) return undefined;
    throw error;
  }
}
