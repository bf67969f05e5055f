/**
 * Static files for the HTTP front: the built web app (web/dist) and the model store, as
 * GetHandlers for HttpFront.addGetHandler().
 *
 * - serveDirectory: a folder under a URL prefix; safe path resolution (no traversal, no
 *   dotfiles, no symlinks out of the folder), Content-Type by extension, ETag/If-None-Match,
 *   HEAD, and page routes (`/volunteer` → volunteer.html).
 * - serveModelStore: exactly model.json, manifest.json and the weight shards model.json lists,
 *   under /models/current/, with an ETag derived from the weights' SHA-256, revalidated on
 *   every use (the browser keeps its own copy in IndexedDB; this only spares re-downloads).
 */
import { createReadStream } from 'node:fs';
import type { Stats } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { MANIFEST_JSON, MODEL_JSON, readManifest } from '../../model-store/store.ts';
import type { GetHandler } from './http-front.ts';

export type { GetHandler };

/** The web app's pages, for `spaRoutes` (paths relative to the prefix). */
export const WEB_APP_ROUTES: Readonly<Record<string, string>> = {
  '/': 'index.html',
  '/volunteer': 'volunteer.html',
  '/dashboard': 'dashboard.html',
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.bin': 'application/octet-stream',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

export interface ServeDirectoryOptions {
  /** URL path the folder is mounted at, e.g. '/' or '/static/'. */
  prefix: string;
  /** Extra paths (relative to the prefix, e.g. '/volunteer') answered with a file of the folder. */
  spaRoutes?: Record<string, string>;
  /**
   * 'immutable-assets': files under `assets/` (Vite's content-hashed names) are cached for a
   * year as immutable, everything else is revalidated. 'revalidate': everything is revalidated.
   */
  cache: 'immutable-assets' | 'revalidate';
}

const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

/**
 * Serves the files of `root` under `options.prefix`. Returns false (so the next handler or the
 * front's 404 answers) for paths outside the prefix and files that do not exist; answers 404
 * itself for paths it refuses (dotfiles, `..`, bad escapes).
 */
export function serveDirectory(root: string, options: ServeDirectoryOptions): GetHandler {
  const base = path.resolve(root);
  const prefix = normalisePrefix(options.prefix);
  const routes = new Map<string, string>();
  for (const [route, file] of Object.entries(options.spaRoutes ?? {})) {
    const relative = route.replace(/^\/+/, '').replace(/\/+$/, '');
    routes.set(relative, file);
  }
  let realBase: Promise<string> | undefined;

  return async (request, response, url) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return false;
    const pathname = url.pathname;
    if (pathname !== prefix.slice(0, -1) && !pathname.startsWith(prefix)) return false;
    const rest = pathname.length >= prefix.length ? pathname.slice(prefix.length) : '';

    const route = routes.get(rest.replace(/\/+$/, ''));
    const relative = route ?? rest;
    const segments = safeSegments(relative);
    if (!segments) {
      sendText(response, 404, 'not found');
      return true;
    }
    if (segments.length === 0) return false; // the prefix itself, with no route for it

    const file = path.join(base, ...segments);
    let stats: Stats;
    try {
      stats = await stat(file);
      if (!stats.isFile()) return false;
      // A symlink inside the folder must not lead out of it.
      realBase ??= realpath(base);
      const real = await realpath(file);
      if (!isInside(await realBase, real)) return false;
    } catch {
      return false;
    }

    const immutable = options.cache === 'immutable-assets' && route === undefined && segments[0] === 'assets' && segments.length > 1;
    await sendFile(request, response, file, {
      etag: `"${stats.size.toString(16)}-${Math.floor(stats.mtimeMs).toString(16)}"`,
      cacheControl: immutable ? IMMUTABLE : REVALIDATE,
      contentType: contentTypeOf(file),
      size: stats.size,
    });
    return true;
  };
}

/** The model store's files under /models/current/, as the volunteer tab downloads them. */
export const MODEL_URL_PREFIX = '/models/current/';

interface StoreListing {
  weightsSha256: string;
  /** File name → served bytes are read from disk on each request. */
  files: Set<string>;
}

/**
 * Serves `modelDir`'s model.json, manifest.json and the weight shards model.json lists (nothing
 * else) at /models/current/. ETag: the weights' SHA-256 and the file name; Cache-Control:
 * no-cache, so a browser revalidates and gets a 304 while the weights are unchanged. Returns
 * false (404) while there is no store.
 */
export function serveModelStore(modelDir: string): GetHandler {
  const dir = path.resolve(modelDir);
  let listing: StoreListing | undefined;

  async function currentListing(): Promise<StoreListing | null> {
    const manifest = await readManifest(dir).catch(() => null);
    if (!manifest) return null;
    if (listing?.weightsSha256 === manifest.weightsSha256) return listing;
    let modelJson: { weightsManifest?: Array<{ paths?: unknown }> };
    try {
      modelJson = JSON.parse(await readFile(path.join(dir, MODEL_JSON), 'utf8')) as typeof modelJson;
    } catch {
      return null;
    }
    const files = new Set<string>([MODEL_JSON, MANIFEST_JSON]);
    for (const group of modelJson.weightsManifest ?? []) {
      for (const p of Array.isArray(group.paths) ? group.paths : []) {
        // Only plain file names inside the folder, as writeModelStore writes them.
        if (typeof p === 'string' && path.basename(p) === p && !p.startsWith('.')) files.add(p);
      }
    }
    listing = { weightsSha256: manifest.weightsSha256, files };
    return listing;
  }

  return async (request, response, url) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return false;
    if (!url.pathname.startsWith(MODEL_URL_PREFIX)) return false;
    const name = url.pathname.slice(MODEL_URL_PREFIX.length);
    const store = await currentListing();
    if (!store || !store.files.has(name)) return false;
    const file = path.join(dir, name);
    let stats: Stats;
    try {
      stats = await stat(file);
      if (!stats.isFile()) return false;
    } catch {
      return false;
    }
    await sendFile(request, response, file, {
      etag: `"w${store.weightsSha256}-${name}"`,
      cacheControl: REVALIDATE,
      contentType: contentTypeOf(file),
      size: stats.size,
    });
    return true;
  };
}

interface FileReply {
  etag: string;
  cacheControl: string;
  contentType: string;
  size: number;
}

async function sendFile(request: IncomingMessage, response: ServerResponse, file: string, reply: FileReply): Promise<void> {
  const headers: Record<string, string | number> = {
    ETag: reply.etag,
    'Cache-Control': reply.cacheControl,
    'X-Content-Type-Options': 'nosniff',
  };
  if (etagMatches(request.headers['if-none-match'], reply.etag)) {
    response.writeHead(304, headers);
    response.end();
    return;
  }
  response.writeHead(200, { ...headers, 'Content-Type': reply.contentType, 'Content-Length': reply.size });
  if (request.method === 'HEAD') {
    response.end();
    return;
  }
  try {
    await pipeline(createReadStream(file), response);
  } catch {
    // The client went away, or the file vanished mid-read (a rebuild): the status line is
    // already out, so the only honest thing left is to cut the response short.
    response.destroy();
  }
}

/** If-None-Match: a list of (possibly weak) tags, or `*`. Compared weakly, as RFC 9110 says for GET. */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  const strip = (tag: string) => tag.trim().replace(/^W\//, '');
  const wanted = strip(etag);
  return header.split(',').some((tag) => strip(tag) === wanted);
}

function normalisePrefix(prefix: string): string {
  let p = prefix.startsWith('/') ? prefix : `/${prefix}`;
  if (!p.endsWith('/')) p += '/';
  return p;
}

/**
 * The path's segments, decoded, or null when the path is refused: bad percent-escapes, NUL,
 * backslashes, empty/`.`/`..` segments or any dotfile. Trailing slashes are ignored.
 */
function safeSegments(relative: string): string[] | null {
  const trimmed = relative.replace(/\/+$/, '');
  if (trimmed === '') return [];
  const segments: string[] = [];
  for (const raw of trimmed.split('/')) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return null;
    }
    if (segment === '' || segment.startsWith('.') || /[\\/\0]/.test(segment)) return null;
    segments.push(segment);
  }
  return segments;
}

function isInside(parent: string, child: string): boolean {
  const relative = path.relative(parent, child);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
}

function sendText(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  response.end(text);
}
