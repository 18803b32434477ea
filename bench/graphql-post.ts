import http from 'node:http';

/**
 * The API client of the end-to-end and query runs: node:http on kept-alive connections. It runs on the same two cores
 * as the gateway, so it should cost little and add no tail of its own (fetch added ~0.4 ms at p50 and several ms at
 * p99 to every query, measured: its own allocations and GC, not the gateway's). Resolves with the raw answer.
 */
export function postGraphqlRaw(agent: http.Agent, port: number, token: string, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/graphql',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'ops-token': token },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}
