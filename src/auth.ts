import crypto from 'node:crypto';
import { ApiTokens, fullScopes, parseScopes, type TokenScopes } from './api-tokens';
import type { Store } from './db/store';

// What a token is and what it may do lives with the token rules; most code asks for it here, beside the Caller.
export {
  ensureBootstrapToken,
  fullScopes,
  generateToken,
  hashToken,
  isAdmin,
  parseScopes,
  readScopes,
  type ReadScope,
  type TokenScopes,
} from './api-tokens';

export interface Caller {
  /** Recorded on each delivery it sends: `env:<n>` for OPS_TOKENS entries, the token id otherwise. */
  id: string;
  name: string;
  scopes: TokenScopes;
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
  /** The stored tokens this authenticator accepts, to create, list and revoke. */
  readonly tokens: ApiTokens;

  constructor(
    private readonly store: Store,
    opsTokens: readonly string[],
    options: AuthenticatorOptions = {},
  ) {
    this.tokens = new ApiTokens(store);
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
