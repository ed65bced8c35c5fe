/**
 * The dashboard's static files, shipped in the package: dashboard/ (plain HTML, CSS and
 * JavaScript, nothing to compile; `npm run build` copies it to dist/dashboard/, beside the
 * code, so whatever ships dist/ ships the page) and uPlot's browser build from node_modules.
 * Read on first use and kept (together under 100 KB); nothing is fetched from anywhere else.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface Asset {
  content_type: string;
  body: Buffer;
}

/** dist/src/node/observe/assets.js → dist/dashboard/. */
const DASHBOARD_DIR = fileURLToPath(new URL('../../../dashboard/', import.meta.url));
const require = createRequire(import.meta.url);

/** URL name → where it is read from and its type. Only these are served. */
const FILES: Readonly<Record<string, { path: () => string; content_type: string }>> = {
  'index.html': { path: () => `${DASHBOARD_DIR}index.html`, content_type: 'text/html; charset=utf-8' },
  'app.js': { path: () => `${DASHBOARD_DIR}app.js`, content_type: 'text/javascript; charset=utf-8' },
  'app.css': { path: () => `${DASHBOARD_DIR}app.css`, content_type: 'text/css; charset=utf-8' },
  'uPlot.iife.min.js': { path: () => require.resolve('uplot/dist/uPlot.iife.min.js'), content_type: 'text/javascript; charset=utf-8' },
  'uPlot.min.css': { path: () => require.resolve('uplot/dist/uPlot.min.css'), content_type: 'text/css; charset=utf-8' },
};

export const ASSET_NAMES: readonly string[] = Object.keys(FILES);

const cache = new Map<string, Asset>();

/** The asset called `name`, or null if there is none (or its file is missing from the install). */
export function assetOf(name: string): Asset | null {
  const cached = cache.get(name);
  if (cached !== undefined) return cached;
  const file = FILES[name];
  if (file === undefined) return null;
  let body: Buffer;
  try {
    body = readFileSync(file.path());
  } catch {
    return null;
  }
  const asset = { content_type: file.content_type, body };
  cache.set(name, asset);
  return asset;
}
