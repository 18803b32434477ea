/**
 * When the gateway last did work for someone: an API request (GraphQL, REST, WebSocket; not probes, metrics or the
 * console's files) or a delivery attempt. Background work that costs callers latency hurries only when this is quiet.
 */
export class CallerActivity {
  private lastMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly clock: () => number = () => performance.now()) {}

  note(): void {
    this.lastMs = this.clock();
  }

  quietFor(ms: number): boolean {
    return this.clock() - this.lastMs >= ms;
  }
}

/** The paths whose requests are someone's work: the API, not /healthz, /readyz, /metrics or the console's files. */
export const isCallerPath = (pathname: string): boolean => pathname === '/graphql' || pathname.startsWith('/api/');
