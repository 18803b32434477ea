import { StoreUnavailableError } from '../errors';
import type { Logger } from '../logger';
import type { Store } from './store';

/** What kept the database from answering, as the metrics and the log name it. */
export type StoreFaultKind = 'disk_full' | 'io_error' | 'busy' | 'unreachable' | 'conflict';

/** Told in general words: no path, no SQL, no server name. */
const faults: Record<StoreFaultKind, { message: string; retryAfterSeconds: number }> = {
  disk_full: { message: "The gateway's database is out of space", retryAfterSeconds: 5 },
  io_error: { message: "The gateway's database could not read or write its disk", retryAfterSeconds: 5 },
  busy: { message: "The gateway's database is busy", retryAfterSeconds: 1 },
  unreachable: { message: 'The gateway cannot reach its database', retryAfterSeconds: 5 },
  conflict: { message: "The gateway's database could not order this write against others", retryAfterSeconds: 1 },
};

const sqliteKinds: [prefix: string, kind: StoreFaultKind][] = [
  ['SQLITE_FULL', 'disk_full'],
  ['SQLITE_IOERR', 'io_error'],
  ['SQLITE_CORRUPT', 'io_error'],
  ['SQLITE_CANTOPEN', 'io_error'],
  ['SQLITE_READONLY', 'io_error'],
  ['SQLITE_BUSY', 'busy'],
  ['SQLITE_LOCKED', 'busy'],
];

/** Errors of the WAL's fdatasync (the SQLite store's own) and of sockets to PostgreSQL. */
const systemKinds: Record<string, StoreFaultKind> = {
  ENOSPC: 'disk_full',
  EDQUOT: 'disk_full',
  EIO: 'io_error',
  EROFS: 'io_error',
  ECONNREFUSED: 'unreachable',
  ECONNRESET: 'unreachable',
  EPIPE: 'unreachable',
  ETIMEDOUT: 'unreachable',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  ENOTFOUND: 'unreachable',
  EAI_AGAIN: 'unreachable',
};

/** SQLSTATE classes and codes: 08 connection, 53 insufficient resources, 57P0x shutdown, 58 system errors. */
function postgresKind(sqlState: string): StoreFaultKind | undefined {
  if (sqlState === '53100') return 'disk_full';
  if (sqlState.startsWith('08') || sqlState.startsWith('57P') || sqlState.startsWith('53')) return 'unreachable';
  if (sqlState.startsWith('58')) return 'io_error';
  // Serialization failure and deadlock: the store runs the transaction again a few times before giving up.
  if (sqlState === '40001' || sqlState === '40P01') return 'conflict';
  return undefined;
}

/** node-postgres reports a lost or refused connection as a plain Error: known by its message. */
const lostConnection = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed)|is not currently accepting connections/;

/**
 * Whether `error` means the database cannot be used for now (a fault of the gateway's own that a retry later gets
 * past), and which kind; undefined for anything else (a bug, a constraint), which stays an unexpected error.
 */
export function classifyStoreError(error: unknown): StoreFaultKind | undefined {
  if (!(error instanceof Error)) return undefined;
  if (error instanceof StoreUnavailableError) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code.startsWith('SQLITE_')) return sqliteKinds.find(([prefix]) => code.startsWith(prefix))?.[1];
    if (code in systemKinds) return systemKinds[code];
    const kind = /^[0-9A-Z]{5}$/.test(code) ? postgresKind(code) : undefined;
    if (kind) return kind;
  }
  return lostConnection.test(error.message) ? 'unreachable' : undefined;
}

export function storeUnavailableError(kind: StoreFaultKind): StoreUnavailableError {
  const { message, retryAfterSeconds } = faults[kind];
  return new StoreUnavailableError(`${message}. Try again in ${retryAfterSeconds} s`, retryAfterSeconds);
}

export interface StoreFaultObserver {
  (kind: StoreFaultKind): void;
}

/** How often a failing store is tried with a small write until it takes one. */
const defaultProbeMs = 500;

/**
 * The store's health as writes see it: failing from the first fault until a write goes through again. While failing it
 * tries a small write of its own now and then (`Store.probeWrite`, the whole write path: lock, pages, commit, fsync),
 * so readiness comes back without traffic. One log line when an episode starts and one when it ends.
 */
export class StoreHealth {
  private failure?: { kind: StoreFaultKind; since: number; faults: number };
  private probeTimer?: NodeJS.Timeout;
  private probing = false;
  private closed = false;
  private readonly healedListeners: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly deps: { logger: Logger; observer?: StoreFaultObserver; probeMs?: number },
  ) {}

  get failing(): boolean {
    return this.failure !== undefined;
  }

  /** Called when the store has healed (the dispatcher claims again at once). */
  onHealed(listener: () => void): void {
    this.healedListeners.push(listener);
  }

  fault(kind: StoreFaultKind, error: unknown): void {
    this.deps.observer?.(kind);
    if (this.failure) {
      this.failure.faults += 1;
      return;
    }
    this.failure = { kind, since: Date.now(), faults: 1 };
    this.deps.logger.error({ err: error, kind }, 'the database cannot take writes; refusing sends until it does');
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.closed || this.probeTimer) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.probe();
    }, this.deps.probeMs ?? defaultProbeMs);
    this.probeTimer.unref();
  }

  private async probe(): Promise<void> {
    if (!this.failure || this.probing || this.closed) return;
    this.probing = true;
    try {
      await this.store.probeWrite();
      this.healed();
    } catch (error) {
      const kind = classifyStoreError(error);
      if (kind) this.deps.observer?.(kind);
      else this.deps.logger.warn({ err: error }, 'the database probe failed unexpectedly');
    } finally {
      this.probing = false;
      if (this.failure) this.scheduleProbe();
    }
  }

  private healed(): void {
    const failure = this.failure;
    if (!failure) return;
    this.failure = undefined;
    this.deps.logger.info(
      { kind: failure.kind, failedForMs: Date.now() - failure.since, faults: failure.faults },
      'the database takes writes again',
    );
    for (const listener of this.healedListeners) listener();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
  }
}

/** Everything the store does that is not a query of the data: left as it is. */
const unguarded = new Set<PropertyKey>(['ping', 'migrationsCurrent', 'close', 'probeWrite']);

/**
 * The store as the rest of the gateway uses it: a fault of the database (`classifyStoreError`) becomes a
 * `StoreUnavailableError` and is reported to `health`; any other error passes unchanged. One decision for both stores.
 */
export function guardStore<S extends Store>(store: S, health: StoreHealth): S {
  // Every store call goes through here (sends, claims, queries): each method is wrapped once, not at every call.
  const wrapped = new Map<PropertyKey, { method: unknown; guarded: unknown }>();
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function' || unguarded.has(property)) return value;
      const known = wrapped.get(property);
      if (known?.method === value) return known.guarded;
      const guarded = (...args: unknown[]) => {
        const failed = (error: unknown): never => {
          const kind = classifyStoreError(error);
          if (!kind) throw error;
          health.fault(kind, error);
          throw storeUnavailableError(kind);
        };
        try {
          const result = (value as (...args: unknown[]) => unknown).apply(target, args);
          return result instanceof Promise ? result.catch(failed) : result;
        } catch (error) {
          return failed(error);
        }
      };
      wrapped.set(property, { method: value, guarded });
      return guarded;
    },
  });
}
