/**
 * When the gateway last did work for someone: an API request (GraphQL, REST, WebSocket; not probes, metrics or the
 * console's files) or a delivery attempt. Background work that costs callers latency hurries only when this is quiet.
 */
export class CallerActivity {
  private lastMs = Number.NEGATIVE_INFINITY;

  note(): void {
    this.lastMs = performance.now();
  }

  quietFor(ms: number): boolean {
    return performance.now() - this.lastMs >= ms;
  }
}

/** The paths whose requests are someone's work: the API, not /healthz, /readyz, /metrics or the console's files. */
export const isCallerPath = (pathname: string): boolean => pathname === '/graphql' || pathname.startsWith('/api/');
