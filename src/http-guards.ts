/**
 * Reads the request body, refusing it as soon as it passes `limitBytes` (a Content-Length over the limit is refused
 * without reading). Returns a request with the same method, headers and signal and the body in memory, or undefined
 * when the body is too large.
 */
export async function withBodyLimit(request: Request, limitBytes: number): Promise<Request | undefined> {
  if (!request.body) return request;
  const declared = Number(request.headers.get('content-length') ?? Number.NaN);
  if (declared > limitBytes) return undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limitBytes) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return new Request(request.url, {
    method: request.method,
    headers: request.headers,
    body: Buffer.concat(chunks),
    signal: request.signal,
  });
}

/** What a refused cross-site browser request is told, on every entry (GraphQL, REST, WebSocket upgrade). */
export const crossSiteRefusal = 'Cross-site browser requests are refused';

/**
 * True for a request a browser sent on behalf of a page of another site, by its Sec-Fetch-Site header (Fetch
 * Metadata). API clients send none; GraphiQL's own requests are same-origin.
 */
export function isCrossSiteBrowserRequest(secFetchSite: string | null | undefined): boolean {
  return secFetchSite === 'cross-site' || secFetchSite === 'same-site';
}

/** A top-level navigation (a link or the address bar), which only loads a page and runs nothing. */
export function isNavigation(request: Request): boolean {
  return request.method === 'GET' && request.headers.get('sec-fetch-mode') === 'navigate';
}
