/**
 * Builds the web app (web/ → web/dist/) with Vite's JS API when the build is missing or stale,
 * so `npm start` serves an up-to-date app without a separate build step.
 *
 * Stale means: web/dist/.build-stamp does not hold the hash of the current sources (web/**
 * except dist, shared/**, web/vite.config.ts, package-lock.json). The build goes to a fresh
 * temporary folder that is renamed into place only when complete, so a crash or a concurrent
 * build never leaves a half-written web/dist behind.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { swapFolderIntoPlace } from '../lib/swap-folder.ts';
import { REPO_ROOT } from '../lib/repo-root.ts';

export const WEB_DIR = path.join(REPO_ROOT, 'web');
export const WEB_DIST_DIR = path.join(WEB_DIR, 'dist');
export const VITE_CONFIG = path.join(WEB_DIR, 'vite.config.ts');
/** A dotfile: serveDirectory never serves it. */
export const BUILD_STAMP = '.build-stamp';

/** What ensureWebBuild logs with; a pino Logger fits. */
export interface BuildLogger {
  info(object: object, message: string): void;
}

export interface WebBuildResult {
  /** The folder to serve. */
  outDir: string;
  /** False when the existing build was up to date. */
  built: boolean;
  /** Time spent (checking, and building if it did). */
  ms: number;
  /** Hash of the sources the build is from. */
  sourceHash: string;
}

export interface WebBuildOptions {
  /** Build even when the stamp matches. */
  force?: boolean;
}

let inFlight: Promise<WebBuildResult> | undefined;

/** Builds web/dist when missing or stale; concurrent calls in one process share one build. */
export function ensureWebBuild(log: BuildLogger, options: WebBuildOptions = {}): Promise<WebBuildResult> {
  inFlight ??= build(log, options).finally(() => {
    inFlight = undefined;
  });
  return inFlight;
}

async function build(log: BuildLogger, options: WebBuildOptions): Promise<WebBuildResult> {
  const started = performance.now();
  const sourceHash = await hashWebSources();
  if (!options.force && (await readStamp(WEB_DIST_DIR)) === sourceHash) {
    return { outDir: WEB_DIST_DIR, built: false, ms: performance.now() - started, sourceHash };
  }

  const temp = await mkdtemp(path.join(WEB_DIR, '.dist-tmp-'));
  try {
    await chmod(temp, 0o755); // mkdtemp makes it private; it is meant to be served
    const vite = await import('vite');
    await vite.build({
      configFile: VITE_CONFIG,
      logLevel: 'warn',
      mode: 'production',
      build: { outDir: temp, emptyOutDir: true },
    });
    await writeFile(path.join(temp, BUILD_STAMP), sourceHash + '\n');
    await swapFolderIntoPlace(temp, WEB_DIST_DIR);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
  const ms = performance.now() - started;
  log.info({ outDir: path.relative(REPO_ROOT, WEB_DIST_DIR), ms: Math.round(ms) }, `web app built in ${(ms / 1000).toFixed(1)} s`);
  return { outDir: WEB_DIST_DIR, built: true, ms, sourceHash };
}

async function readStamp(dir: string): Promise<string | null> {
  try {
    return (await readFile(path.join(dir, BUILD_STAMP), 'utf8')).trim();
  } catch {
    return null;
  }
}

/** SHA-256 over the relative path and contents of every source file the build depends on. */
export async function hashWebSources(): Promise<string> {
  const files = [
    ...(await listFiles(WEB_DIR, (relative) => relative !== 'dist' && !relative.startsWith('.'))),
    ...(await listFiles(path.join(REPO_ROOT, 'shared'), () => true)),
    path.join(REPO_ROOT, 'package-lock.json'),
  ];
  // web/vite.config.ts is part of web/** already; listed by the brief on its own, it is in.
  const unique = [...new Set(files.map((f) => path.relative(REPO_ROOT, f).split(path.sep).join('/')))].sort();
  const hash = createHash('sha256');
  for (const relative of unique) {
    let content: Buffer;
    try {
      content = await readFile(path.join(REPO_ROOT, relative));
    } catch {
      continue; // vanished meanwhile (an editor's temp file)
    }
    hash.update(`${relative}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest('hex');
}

/** Files under `dir`, recursively; `keepTop` filters the entries of `dir` itself; dot-entries and node_modules are skipped below. */
async function listFiles(dir: string, keepTop: (name: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  async function walk(current: string, top: boolean): Promise<void> {
    let entries;
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (top ? !keepTop(entry.name) : entry.name.startsWith('.')) continue;
      if (entry.name === 'node_modules') continue;
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) await walk(full, false);
      else if (entry.isFile()) out.push(full);
    }
  }
  await walk(dir, true);
  return out;
}

