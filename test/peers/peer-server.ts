import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

/** Listens (on a free port when `port` is 0) and gives the base URL to reach the peer at. */
export async function listenLocal(server: http.Server, port = 0, host = '127.0.0.1'): Promise<{ url: string; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const { port: bound, address } = server.address() as AddressInfo;
  const reachable = address === '0.0.0.0' ? '127.0.0.1' : address.includes(':') ? `[${address}]` : address;
  return { url: `http://${reachable}:${bound}`, port: bound };
}

/** Stops listening and drops every connection, answers left hanging on purpose included. */
export async function closeServer(server: http.Server, hanging: Iterable<http.ServerResponse> = []): Promise<void> {
  for (const response of hanging) response.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

/** Runs `main` when the module at `moduleUrl` is the script node started (a peer started by hand). */
export function runIfMain(moduleUrl: string, main: () => Promise<void>): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
