import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConsoleDir } from '../../src/config';
import { startGateway, type TestGateway } from '../support/gateway';

const csp =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const expectConsoleHeaders = (response: Response) => {
  expect(response.headers.get('content-security-policy')).toBe(csp);
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  expect(response.headers.get('referrer-policy')).toBe('no-referrer');
};

describe('/console from a built folder', () => {
  let gateway: TestGateway;
  let outside: string;
  const page = '<!doctype html><html lang="en"><head><script type="module" src="/console/main-ABCD2345.js"></script></head></html>\n';

  beforeAll(async () => {
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'console-route-'));
    const dir = path.join(outside, 'console');
    fs.mkdirSync(path.join(dir, 'nested'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'index.html'), page);
    fs.writeFileSync(path.join(dir, 'main-ABCD2345.js'), 'console.log("console");\n');
    fs.writeFileSync(path.join(dir, 'main-WXYZ6789.css'), 'body{color:#111}\n');
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a built asset\n');
    fs.writeFileSync(path.join(dir, 'nested', 'main-ABCD2345.js'), 'nested\n');
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'TOP SECRET\n');
    fs.writeFileSync(path.join(outside, 'main-ABCD2345.js'), 'TOP SECRET\n');
    gateway = await startGateway({ noDispatch: true, env: { CONSOLE_DIR: dir } });
  });
  afterAll(async () => {
    await gateway.close();
    fs.rmSync(outside, { recursive: true, force: true });
  });

  it('serves index.html at /console and /console/, never cached, with the console headers', async () => {
    for (const pathname of ['/console', '/console/']) {
      const response = await gateway.fetch(pathname);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(response.headers.get('cache-control')).toBe('no-store');
      expectConsoleHeaders(response);
      expect(await response.text()).toBe(page);
    }
  });

  it('answers client routes with index.html (no-store), query strings included', async () => {
    for (const pathname of [
      '/console/deliveries',
      '/console/deliveries/dlv_01JX0ABCDEF?x=1',
      '/console/overview',
      '/console/send',
      '/console/tokens',
      '/console/deliveries?channel=EMAIL&recipient=ops%40example.com&status=SENT',
      '/console/index.html',
    ]) {
      const response = await gateway.fetch(pathname);
      expect(response.status, pathname).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expectConsoleHeaders(response);
      expect(await response.text()).toBe(page);
    }
  });

  it('serves hashed assets with their content type and a year-long immutable cache', async () => {
    const script = await gateway.fetch('/console/main-ABCD2345.js');
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expectConsoleHeaders(script);
    expect(await script.text()).toBe('console.log("console");\n');

    const style = await gateway.fetch('/console/main-WXYZ6789.css');
    expect(style.status).toBe(200);
    expect(style.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(style.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await style.text()).toBe('body{color:#111}\n');
  });

  it('answers HEAD like GET without a body, and refuses other methods', async () => {
    const head = await gateway.fetch('/console/main-ABCD2345.js', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await head.text()).toBe('');
    const post = await gateway.fetch('/console/deliveries', { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expectConsoleHeaders(post);
  });

  it('answers 404 (not the page) for a missing or unbuilt file, with the console headers', async () => {
    for (const pathname of ['/console/main-ZZZZ2222.js', '/console/notes.txt', '/console/favicon.ico', '/console/nested/main-ABCD2345.js']) {
      const response = await gateway.fetch(pathname);
      expect(response.status, pathname).toBe(404);
      expect(response.headers.get('content-type')).toBe('text/plain; charset=utf-8');
      expectConsoleHeaders(response);
      expect(await response.text()).not.toContain('nested');
    }
  });

  it('never reads outside its folder', async () => {
    for (const pathname of [
      '/console/../secret.txt',
      '/console/..%2Fsecret.txt',
      '/console/..%2fmain-ABCD2345.js',
      '/console/%2e%2e/secret.txt',
      '/console/%2e%2e%2fsecret.txt',
      '/console/..%5Csecret.txt',
      '/console/....//secret.txt',
      '/console/%252e%252e%252fsecret.txt',
      '/console/main-ABCD2345.js/../../secret.txt',
      '/console/%2e%2e/main-ABCD2345.js',
      '/console//etc/passwd',
      '/console/%00main-ABCD2345.js',
    ]) {
      const response = await gateway.fetch(pathname);
      const body = await response.text();
      expect(body, pathname).not.toContain('TOP SECRET');
      expect(body, pathname).not.toContain('root:');
      expect(body, pathname).not.toContain('nested');
    }
    // A raw request line is not normalised by a URL parser first.
    const base = await gateway.listen();
    const raw = await fetch(`${base}/console/%2e%2e/%2e%2e/secret.txt`);
    expect(await raw.text()).not.toContain('TOP SECRET');
  });

  it('leaves other paths to the rest of the gateway', async () => {
    expect((await gateway.fetch('/consoles')).status).toBe(404);
    expect((await gateway.fetch('/healthz')).status).toBe(200);
  });
});

describe('/console before a build', () => {
  let gateway: TestGateway;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'console-unbuilt-'));
    gateway = await startGateway({ noDispatch: true, env: { CONSOLE_DIR: path.join(dir, 'console') } });
  });
  afterAll(async () => {
    await gateway.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers 503 with a plain sentence saying to run npm run build', async () => {
    for (const pathname of ['/console', '/console/deliveries']) {
      const response = await gateway.fetch(pathname);
      expect(response.status).toBe(503);
      expect(response.headers.get('content-type')).toBe('text/plain; charset=utf-8');
      expectConsoleHeaders(response);
      expect(await response.text()).toMatch(/not built: run `npm run build`/);
    }
  });
});

describe('the console npm run build wrote (dist/console; the test run builds it first)', () => {
  const dir = defaultConsoleDir;
  const html = () => fs.readFileSync(path.join(dir, 'index.html'), 'utf8');
  const referenced = () => [...html().matchAll(/(?:src|href)="\/console\/([^"]+)"/g)].map((match) => match[1]);

  it('has an index.html that references hashed script and style files that exist, and nothing inline', () => {
    const files = referenced();
    expect(files.filter((file) => /^main-[A-Z0-9]{8}\.js$/.test(file))).toHaveLength(1);
    expect(files.filter((file) => /^main-[A-Z0-9]{8}\.css$/.test(file))).toHaveLength(1);
    for (const file of files) expect(fs.existsSync(path.join(dir, file)), file).toBe(true);
    expect(html()).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html()).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    expect(html()).not.toMatch(/https?:\/\//);
  });

  it("keeps the page's JavaScript under 150 KB gzipped, and its CSS includes uPlot's", () => {
    // The page's script is one bundle (no code splitting): what index.html refers to is all the JavaScript it loads.
    const scripts = referenced().filter((file) => file.endsWith('.js'));
    expect(scripts).toHaveLength(1);
    const source = fs.readFileSync(path.join(dir, scripts[0]), 'utf8');
    expect(source).not.toMatch(/\bimport\s*\(|^import\s|\bimport\s*["'{*]/m);
    const gzipped = gzipSync(source, { level: 9 }).length;
    expect(gzipped).toBeLessThan(150 * 1024);
    const css = referenced().filter((file) => file.endsWith('.css')).map((file) => fs.readFileSync(path.join(dir, file), 'utf8')).join('');
    expect(css).toContain('.uplot');
  });

  it('is served by a gateway with the default CONSOLE_DIR', async () => {
    const gateway = await startGateway({ noDispatch: true });
    try {
      expect(gateway.config.consoleDir).toBe(dir);
      const page = await gateway.fetch('/console/deliveries');
      expect(page.status).toBe(200);
      expect(await page.text()).toBe(html());
      for (const file of referenced()) {
        const asset = await gateway.fetch(`/console/${file}`);
        expect(asset.status, file).toBe(200);
        expect(asset.headers.get('content-type')).toMatch(file.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
      }
    } finally {
      await gateway.close();
    }
  });
});
