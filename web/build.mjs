// Builds the delivery console into dist/console (or the folder given as the first argument): web/src/main.tsx
// bundled and minified by esbuild, its CSS (uPlot's included) beside it, both with content hashes in their names,
// and an index.html that references them. No inline script or style: the gateway serves the page under a CSP that
// allows only 'self'. Run by `npm run build`.
//
// A gateway may be serving the folder while it is rebuilt (tests run the build while others run): the new hashed files
// are added beside the old ones, index.html is replaced in one rename, and only then are files removed that neither
// the new page nor the one before it refers to.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] ?? path.join(here, '..', 'dist', 'console'));

const staging = `${outdir}.build-${process.pid}`;
fs.rmSync(staging, { recursive: true, force: true });
const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ['src/main.tsx'],
  tsconfig: 'tsconfig.json',
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022', 'chrome109', 'firefox115', 'safari16'],
  outdir: staging,
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
});

const outputs = Object.entries(result.metafile.outputs);
const script = outputs.find(([, output]) => output.entryPoint === 'src/main.tsx');
if (!script) throw new Error('esbuild wrote no script for src/main.tsx');
const style = script[1].cssBundle;
const href = (file) => `/console/${path.basename(file)}`;

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Delivery console · notify-gateway</title>
<link rel="icon" href="data:,">
${style ? `<link rel="stylesheet" href="${href(style)}">\n` : ''}<script type="module" src="${href(script[0])}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The delivery console needs JavaScript.</noscript>
</body>
</html>
`;
fs.writeFileSync(path.join(staging, 'index.html'), html);

/** The files an index.html refers to. */
const referencedBy = (file) => {
  try {
    return [...fs.readFileSync(file, 'utf8').matchAll(/(?:src|href)="\/console\/([^"/]+)"/g)].map((match) => match[1]);
  } catch {
    return [];
  }
};
fs.mkdirSync(outdir, { recursive: true });
const previous = referencedBy(path.join(outdir, 'index.html'));
const built = fs.readdirSync(staging).filter((file) => file !== 'index.html');
for (const file of built) fs.renameSync(path.join(staging, file), path.join(outdir, file));
fs.renameSync(path.join(staging, 'index.html'), path.join(outdir, 'index.html'));
fs.rmSync(staging, { recursive: true, force: true });
const keep = new Set(['index.html', ...built, ...previous]);
for (const file of fs.readdirSync(outdir)) if (!keep.has(file)) fs.rmSync(path.join(outdir, file), { recursive: true, force: true });
