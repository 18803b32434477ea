import http from 'node:http';
import { testToken } from '../support/gateway';

export interface LegacyResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: { code: number; data: string; deliveryId?: string };
}

export interface LegacyRequestOptions {
  method?: string;
  /** OPS-Token; the test token unless given, none when null. */
  token?: string | null;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Send the body in pieces without Content-Length (chunked). */
  chunked?: boolean;
}

/**
 * One request with the request target exactly as written (node:http sends the path as is), so tests control the
 * encoding byte for byte.
 */
export function legacyRequest(base: string, rawPath: string, options: LegacyRequestOptions = {}): Promise<LegacyResponse> {
  const { hostname, port } = new URL(base);
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? testToken : options.token;
  if (token !== null) headers['OPS-Token'] = token;
  const body = options.body === undefined ? undefined : Buffer.from(options.body);
  if (body && !options.chunked) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const request = http.request(
      { hostname, port, path: rawPath, method: options.method ?? 'GET', headers, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: LegacyResponse['body'];
          try {
            parsed = JSON.parse(text);
          } catch {
            reject(new Error(`not JSON (HTTP ${response.statusCode}): ${text.slice(0, 200)}`));
            return;
          }
          resolve({ status: response.statusCode!, headers: response.headers, text, body: parsed });
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    if (body && options.chunked) {
      const piece = 64 * 1024;
      for (let offset = 0; offset < body.length; offset += piece) request.write(body.subarray(offset, offset + piece));
      request.end();
    } else {
      request.end(body);
    }
  });
}

/** A query string encoded the way browsers and URLSearchParams do (space as +). */
export const query = (params: Record<string, string>) => new URLSearchParams(params).toString();
