import pg from 'pg';
import type { Logger } from '../logger';
import { connectionSettings } from './postgres-client';
import type { ChangeFeed } from './store';

const channel = 'delivery_changes';
/** NOTIFY payloads must stay under 8,000 bytes. */
const payloadLimit = 7900;
const reconnectDelaysMs = [100, 250, 500, 1000, 2000, 5000];

/**
 * Live updates between replicas over LISTEN/NOTIFY. Each replica announces the ids of the deliveries it changed, after
 * the change is committed, in one notification per event-loop turn: `<replica id> <id>,<id>,…`, never content or
 * secrets (the listener reads the row by id). Announcing after the commit, not inside the transaction, matters: a
 * transaction that notifies holds a database-wide lock through its commit, which would put every write in single file.
 * A replica skips its own announcements (it told its own listeners already). Notifications sent while a listener is
 * cut off are lost; when it is back it says so (`undefined`), and whoever watches reads again.
 */
export class PostgresChangeFeed implements ChangeFeed {
  private listener?: pg.Client;
  private handlers: ((ids: readonly string[] | undefined) => void)[] = [];
  private pending = new Set<string>();
  private flushing = false;
  private closed = false;
  private live = false;
  private everConnected = false;
  private failures = 0;
  private reconnectTimer?: NodeJS.Timeout;

  constructor(
    private readonly pool: pg.Pool,
    private readonly settings: { url: string; applicationName: string; replicaId: string },
    private readonly logger?: Logger,
  ) {}

  get connected(): boolean {
    return this.live;
  }

  get replicaId(): string {
    return this.settings.replicaId;
  }

  /** Connects the listening session; resolves once it listens (or throws when the server cannot be reached). */
  async start(): Promise<void> {
    await this.connect();
  }

  announce(ids: readonly string[]): void {
    if (this.closed) return;
    for (const id of ids) this.pending.add(id);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => void this.flush());
  }

  /** One announcement in flight at a time: ids that come meanwhile go together in the next one. */
  private async flush(): Promise<void> {
    try {
      while (this.pending.size > 0 && !this.closed) {
        const ids = [...this.pending];
        this.pending.clear();
        await this.notify(ids);
      }
    } finally {
      this.flushing = false;
    }
  }

  listen(handler: (ids: readonly string[] | undefined) => void): void {
    this.handlers.push(handler);
  }

  private async notify(ids: string[]): Promise<void> {
    const prefix = `${this.settings.replicaId} `;
    const payloads: string[] = [];
    let current = '';
    for (const id of ids) {
      if (current && prefix.length + current.length + 1 + id.length > payloadLimit) {
        payloads.push(prefix + current);
        current = '';
      }
      current = current ? `${current},${id}` : id;
    }
    if (current) payloads.push(prefix + current);
    try {
      // One statement, one round trip, however many payloads. A transaction that notifies gets an id and a commit
      // record, and holds the server-wide notification lock through its commit: not waiting for that record's flush
      // (the change itself is durable already; a lost announcement is one that a crash would have lost anyway) keeps
      // the lock short.
      await this.pool.query({
        name: 'announce',
        text: `select set_config('synchronous_commit', 'off', true), pg_notify('${channel}', payload)
               from unnest($1::text[]) as payload`,
        values: [payloads],
      });
    } catch (error) {
      // The change is committed either way; only other replicas' live views miss it (they read again on reconnect).
      this.logger?.debug({ err: error }, 'could not announce delivery changes');
    }
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(connectionSettings(this.settings));
    client.on('notification', (message) => {
      if (message.channel !== channel || !message.payload) return;
      const space = message.payload.indexOf(' ');
      if (space < 0 || message.payload.slice(0, space) === this.settings.replicaId) return;
      const ids = message.payload.slice(space + 1).split(',').filter(Boolean);
      for (const handler of this.handlers) handler(ids);
    });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client));
    await client.connect();
    await client.query(`listen ${channel}`);
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.listener = client;
    this.live = true;
    this.failures = 0;
    if (this.everConnected) {
      this.logger?.info('live updates from other replicas restored');
      for (const handler of this.handlers) handler(undefined);
    }
    this.everConnected = true;
  }

  private lost(client: pg.Client, error?: Error): void {
    if (this.listener !== client || this.closed) return;
    this.listener = undefined;
    this.live = false;
    this.logger?.warn({ err: error }, 'lost the PostgreSQL listener for live updates; reconnecting');
    client.end().catch(() => {});
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const delay = reconnectDelaysMs[Math.min(this.failures, reconnectDelaysMs.length - 1)];
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect().catch(() => {
        this.failures += 1;
        this.scheduleReconnect();
      });
    }, delay);
    this.reconnectTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const client = this.listener;
    this.listener = undefined;
    this.live = false;
    await client?.end().catch(() => {});
  }
}
