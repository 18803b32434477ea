import fs from 'node:fs/promises';
import path from 'node:path';

/** Sent with every answer under /console: the page runs only its own script and talks only to its own origin. */
export const consoleSecurityHeaders: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

const contentTypes: Readonly<Record<string, string>> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * A file the build wrote: one path segment, a name, a dash, esbuild's content hash and a known extension. Nothing
 * else is ever read from the folder (no dot segments, no slashes, no other files), so no path can leave it.
 */
const hashedAsset = /^([A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*)-([A-Z0-9]{8})(\.[a-z0-9]+)$/;

const immutable = 'public, max-age=31536000, immutable';

function answer(status: number, body: BodyInit | null, headers: Record<string, string>, head: boolean): Response {
  return new Response(head ? null : body, { status, headers: { ...consoleSecurityHeaders, ...headers } });
}

const text = (status: number, message: string, head: boolean, extra: Record<string, string> = {}) =>
  answer(status, `${message}\n`, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...extra }, head);

async function readIfFile(file: string): Promise<Uint8Array<ArrayBuffer> | undefined> {
  try {
    return new Uint8Array(await fs.readFile(file));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
    throw error;
  }
}

/**
 * GET /console and everything under it, from the folder `npm run build` writes (web/build.mjs): the hashed assets
 * cached for a year, any other path the page's index.html (client-side routes), never cached. Undefined for paths
 * outside /console.
 */
export function createConsoleRoute(consoleDir: string) {
  const dir = path.resolve(consoleDir);
  return async (request: Request, url: URL): Promise<Response | undefined> => {
    const { pathname } = url;
    if (pathname !== '/console' && !pathname.startsWith('/console/')) return undefined;
    const head = request.method === 'HEAD';
    if (request.method !== 'GET' && !head) return text(405, 'Only GET and HEAD are served under /console.', false, { allow: 'GET, HEAD' });

    const rest = pathname.slice('/console/'.length);
    const asset = hashedAsset.exec(rest);
    if (asset) {
      const extension = asset[3];
      const type = contentTypes[extension];
      const body = type ? await readIfFile(path.join(dir, rest)) : undefined;
      if (body && type) return answer(200, body, { 'content-type': type, 'cache-control': immutable }, head);
    }
    // A file the page asked for that is not there (an old hash after a new build): a plain 404, not the page.
    if (/\.[A-Za-z0-9]{1,8}$/.test(rest) && !rest.endsWith('.html')) return text(404, 'No such file in the console.', head);

    const page = await readIfFile(path.join(dir, 'index.html'));
    if (!page) return text(503, 'The delivery console is not built: run `npm run build` and restart the gateway.', head);
    return answer(200, page, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }, head);
  };
}
