import crypto from 'node:crypto';
import { z } from 'zod';
import { channels, type ChannelName } from './db/schema';
import type { Store } from './db/store';

export type ReadScope = 'none' | 'own' | 'all';

export interface TokenScopes {
  channels: ChannelName[];
  read: ReadScope;
}

export interface Caller {
  /** Recorded on each delivery it sends: `env:<n>` for OPS_TOKENS entries, the token id otherwise. */
  id: string;
  name: string;
  scopes: TokenScopes;
}

export const fullScopes: TokenScopes = { channels: [...channels], read: 'all' };

export const readScopes = ['none', 'own', 'all'] as const satisfies readonly ReadScope[];

const scopesSchema = z.object({ channels: z.array(z.enum(channels)), read: z.enum(readScopes) });

/** The scopes stored with a token, or undefined when they are not valid (such a token is refused, not widened). */
export function parseScopes(json: string): TokenScopes | undefined {
  try {
    const parsed = scopesSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

export function generateToken(): string {
  return `ngw_${crypto.randomBytes(24).toString('base64url')}`;
}

export interface AuthenticatorOptions {
  /** api_tokens.last_used_at is written at most this often per token (default one minute), not on every request. */
  touchIntervalMs?: number;
  now?: () => number;
}

export class Authenticator {
  private readonly configured: Buffer[];
  private readonly touchedAt = new Map<string, number>();
  private readonly touchIntervalMs: number;
  private readonly now: () => number;

  constructor(
    private readonly store: Store,
    opsTokens: readonly string[],
    options: AuthenticatorOptions = {},
  ) {
    this.configured = opsTokens.map((token) => crypto.createHash('sha256').update(token, 'utf8').digest());
    this.touchIntervalMs = options.touchIntervalMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  async authenticate(token: string | null | undefined): Promise<Caller | undefined> {
    if (!token) return undefined;
    const presented = crypto.createHash('sha256').update(token, 'utf8').digest();
    // Looked up on every request, never cached: a revoked token fails at once.
    // Compare against every configured token, without stopping early, so timing tells nothing.
    let match = -1;
    this.configured.forEach((candidate, index) => {
      if (crypto.timingSafeEqual(candidate, presented) && match < 0) match = index;
    });
    if (match >= 0) return { id: `env:${match + 1}`, name: `OPS_TOKENS #${match + 1}`, scopes: fullScopes };
    const row = await this.store.findTokenByHash(presented.toString('hex'));
    if (!row || row.revokedAt != null) return undefined;
    const scopes = parseScopes(row.scopes);
    if (!scopes) return undefined;
    this.touch(row.id);
    return { id: row.id, name: row.name, scopes };
  }

  private touch(id: string): void {
    const now = this.now();
    const last = this.touchedAt.get(id);
    if (last !== undefined && now - last < this.touchIntervalMs) return;
    this.touchedAt.set(id, now);
    this.store.touchToken(id, now).catch(() => this.touchedAt.delete(id));
  }
}

/**
 * With no OPS_TOKENS and no stored token, creates one with full rights, keeps only its hash and returns the token so
 * that the caller can print it once.
 */
export async function ensureBootstrapToken(store: Store, opsTokens: readonly string[]): Promise<string | undefined> {
  if (opsTokens.length > 0) return undefined;
  if ((await store.listTokens()).length > 0) return undefined;
  const token = generateToken();
  try {
    await store.insertToken({
      id: `tok_${crypto.randomBytes(8).toString('hex')}`,
      name: 'bootstrap',
      tokenHash: hashToken(token),
      scopes: JSON.stringify(fullScopes),
      createdAt: Date.now(),
      revokedAt: null,
      lastUsedAt: null,
    });
  } catch (error) {
    // Replicas starting together on an empty shared database: one of them made it (its token is printed there).
    if ((await store.listTokens()).some((row) => row.name === 'bootstrap')) return undefined;
    throw error;
  }
  return token;
}
