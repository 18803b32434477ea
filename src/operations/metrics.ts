import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { channels, type ChannelName, type DeliveryRow } from '../db/schema';
import type { NewAttempt, Store } from '../db/store';
import type { StoreFaultKind } from '../db/store-faults';
import type { Logger } from '../logger';

export interface MetricsDeps {
  store: Store;
  logger: Logger;
  now?: () => number;
}

/** Seconds; providers answer in tens of milliseconds to the provider timeout (10 s by default). */
const attemptBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const requestBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const knownMethods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * The gateway's Prometheus metrics, in a registry of their own: tests build several apps in one process, and each
 * scrape must show one app's numbers only.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly now: () => number;

  private readonly accepted: Counter<'channel' | 'provider'>;
  private readonly sent: Counter<'channel' | 'provider'>;
  private readonly failed: Counter<'channel' | 'provider'>;
  private readonly retried: Counter<'channel' | 'provider'>;
  private readonly attemptDuration: Histogram<'provider' | 'outcome'>;
  private readonly rateLimited: Counter<'channel' | 'scope'>;
  private readonly storeFaults: Counter<'kind'>;
  private readonly purgedDeliveries: Counter;
  private readonly redactedDeliveries: Counter;
  private readonly graphqlOperations: Counter<'transport' | 'operation_type' | 'operation' | 'outcome'>;
  private readonly websocketConnections: Gauge;
  private readonly websocketRefusals: Counter<'reason'>;
  private readonly graphqlDuration: Histogram<'operation_type' | 'operation'>;
  private readonly httpRequests: Counter<'method' | 'route' | 'status_code'>;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;

  constructor(private readonly deps: MetricsDeps) {
    this.now = deps.now ?? Date.now;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    const deliveryCounter = (name: string, help: string) =>
      new Counter({ name, help, labelNames: ['channel', 'provider'] as const, registers });
    this.accepted = deliveryCounter(
      'notify_gateway_deliveries_accepted_total',
      'Deliveries recorded for sending (idempotent replays and refused requests are not counted)',
    );
    this.sent = deliveryCounter('notify_gateway_deliveries_sent_total', 'Deliveries the provider accepted');
    this.failed = deliveryCounter(
      'notify_gateway_deliveries_failed_total',
      'Deliveries given up after an attempt: permanent error, or out of attempts or time',
    );
    this.retried = deliveryCounter(
      'notify_gateway_deliveries_retried_total',
      'Failed attempts after which the delivery was scheduled for another attempt (status RETRYING)',
    );
    this.attemptDuration = new Histogram({
      name: 'notify_gateway_delivery_attempt_duration_seconds',
      help: 'Time a provider took to answer one attempt, by outcome (sent, retryable, permanent, rate_limited)',
      labelNames: ['provider', 'outcome'],
      buckets: attemptBuckets,
      registers,
    });
    this.rateLimited = new Counter({
      name: 'notify_gateway_rate_limit_refusals_total',
      help: 'Send requests refused by a rate limit, nothing recorded: scope recipient (SMS per number) or caller (per token)',
      labelNames: ['channel', 'scope'],
      registers,
    });

    this.storeFaults = new Counter({
      name: 'notify_gateway_store_faults_total',
      help: 'Database operations that failed because the database could not be used (disk_full, io_error, busy, unreachable, conflict)',
      labelNames: ['kind'],
      registers,
    });

    this.purgedDeliveries = new Counter({
      name: 'notify_gateway_deliveries_purged_total',
      help: 'Final deliveries deleted (with their attempts) by the retention pass, older than DELIVERY_RETENTION_DAYS',
      registers,
    });
    this.redactedDeliveries = new Counter({
      name: 'notify_gateway_deliveries_redacted_total',
      help: 'Final deliveries whose content the retention pass replaced with the marker, older than CONTENT_RETENTION_DAYS',
      registers,
    });

    const store = deps.store;
    const logger = deps.logger;
    new Gauge({
      name: 'notify_gateway_queue_depth',
      help: 'Deliveries not final yet (QUEUED, RETRYING or SENDING), read from the database at scrape time',
      labelNames: ['channel'],
      registers,
      async collect() {
        try {
          const counts = new Map((await store.countPending()).map((row) => [row.channel, row.count]));
          for (const channel of channels) this.set({ channel }, counts.get(channel) ?? 0);
        } catch (error) {
          // NaN rather than a stale number; /readyz says why.
          for (const channel of channels) this.set({ channel }, Number.NaN);
          logger.warn({ err: error }, 'queue depth unavailable for the metrics scrape');
        }
      },
    });
    const now = this.now;
    new Gauge({
      name: 'notify_gateway_oldest_pending_age_seconds',
      help: 'Age of the oldest delivery not final yet (0 when there is none), read at scrape time',
      registers,
      async collect() {
        try {
          const oldest = await store.oldestPendingCreatedAt();
          this.set(oldest === undefined ? 0 : Math.max(0, now() - oldest) / 1000);
        } catch (error) {
          this.set(Number.NaN);
          logger.warn({ err: error }, 'oldest pending delivery unavailable for the metrics scrape');
        }
      },
    });

    this.graphqlOperations = new Counter({
      name: 'notify_gateway_graphql_operations_total',
      help: 'GraphQL operations executed, by transport (http, sse, websocket), type and root field (not the client-chosen operation name), and outcome',
      labelNames: ['transport', 'operation_type', 'operation', 'outcome'],
      registers,
    });
    this.websocketConnections = new Gauge({
      name: 'notify_gateway_websocket_connections',
      help: 'GraphQL over WebSocket connections open now',
      registers,
    });
    this.websocketRefusals = new Counter({
      name: 'notify_gateway_websocket_refused_total',
      help: 'WebSocket connections refused, by reason (unauthenticated, cross_site)',
      labelNames: ['reason'],
      registers,
    });
    this.graphqlDuration = new Histogram({
      name: 'notify_gateway_graphql_operation_duration_seconds',
      help: 'Execution time of GraphQL queries and mutations (a send waiting for its first attempt included)',
      labelNames: ['operation_type', 'operation'],
      buckets: requestBuckets,
      registers,
    });
    this.httpRequests = new Counter({
      name: 'notify_gateway_http_requests_total',
      help: 'HTTP requests answered, by method, route template and status code',
      labelNames: ['method', 'route', 'status_code'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'notify_gateway_http_request_duration_seconds',
      help: 'Time to answer an HTTP request (to the response head for event streams)',
      labelNames: ['method', 'route', 'status_code'],
      buckets: requestBuckets,
      registers,
    });
  }

  deliveryAccepted(delivery: Pick<DeliveryRow, 'channel' | 'provider'>): void {
    this.accepted.inc({ channel: delivery.channel, provider: delivery.provider });
  }

  rateLimitRefused(channel: ChannelName, scope: 'recipient' | 'caller'): void {
    this.rateLimited.inc({ channel, scope });
  }

  storeFault(kind: StoreFaultKind): void {
    this.storeFaults.inc({ kind });
  }

  deliveriesPurged(count: number): void {
    this.purgedDeliveries.inc(count);
  }

  deliveriesRedacted(count: number): void {
    this.redactedDeliveries.inc(count);
  }

  /** Called by the dispatcher after each recorded attempt, with the delivery as the attempt left it. */
  attemptFinished(delivery: DeliveryRow, attempt: NewAttempt): void {
    const labels = { channel: delivery.channel, provider: delivery.provider };
    this.attemptDuration.observe({ provider: delivery.provider, outcome: attempt.outcome.toLowerCase() }, attempt.durationMs / 1000);
    if (delivery.status === 'SENT') this.sent.inc(labels);
    else if (delivery.status === 'FAILED') this.failed.inc(labels);
    else if (delivery.status === 'RETRYING') this.retried.inc(labels);
  }

  graphqlOperation(transport: string, operationType: string, operation: string, outcome: 'success' | 'error', seconds?: number): void {
    this.graphqlOperations.inc({ transport, operation_type: operationType, operation, outcome });
    if (seconds !== undefined) this.graphqlDuration.observe({ operation_type: operationType, operation }, seconds);
  }

  websocketOpened(): void {
    this.websocketConnections.inc();
  }

  websocketClosed(): void {
    this.websocketConnections.dec();
  }

  websocketRefused(reason: 'unauthenticated' | 'cross_site'): void {
    this.websocketRefusals.inc({ reason });
  }

  httpRequest(method: string, route: string, statusCode: number, seconds: number): void {
    const labels = { method: knownMethods.has(method) ? method : 'OTHER', route, status_code: String(statusCode) };
    this.httpRequests.inc(labels);
    this.httpDuration.observe(labels, seconds);
  }

  /** The scrape answer in the Prometheus text format. */
  async response(): Promise<Response> {
    const body = await this.registry.metrics();
    return new Response(body, { status: 200, headers: { 'content-type': this.registry.contentType } });
  }
}
