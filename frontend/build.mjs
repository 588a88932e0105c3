// Builds the dashboard into dist/: one JavaScript bundle (Chart.js and the date adapter
// included, so the page needs nothing from a CDN at run time), the stylesheet, and index.html
// pointing at both. Asset names carry a content hash so nginx can cache them for long; only
// index.html must be revalidated.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');

const hashed = (name, ext, contents) =>
  `${name}-${createHash('sha256').update(contents).digest('hex').slice(0, 10)}.${ext}`;

await rm(dist, { recursive: true, force: true });
await mkdir(join(dist, 'assets'), { recursive: true });

const result = await esbuild.build({
  entryPoints: [join(src, 'main.js'), join(src, 'style.css')],
  bundle: true,
  minify: true,
  sourcemap: 'linked',
  format: 'esm',
  target: ['es2020'],
  outdir: join(dist, 'assets'),
  entryNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
});

const outputs = Object.entries(result.metafile.outputs);
const find = (entry) => {
  const hit = outputs.find(([, meta]) => meta.entryPoint && meta.entryPoint.endsWith(entry));
  if (!hit) throw new Error(`esbuild produced no output for ${entry}`);
  return hit[0].slice(hit[0].lastIndexOf('assets/'));
};

const favicon = await readFile(join(src, 'favicon.svg'));
const faviconName = `assets/${hashed('favicon', 'svg', favicon)}`;
await writeFile(join(dist, faviconName), favicon);

const html = (await readFile(join(src, 'index.html'), 'utf8'))
  .replace('__APP_JS__', find('src/main.js'))
  .replace('__APP_CSS__', find('src/style.css'))
  .replaceAll('__FAVICON__', faviconName);
await writeFile(join(dist, 'index.html'), html);

console.log(`built ${dist}`);
