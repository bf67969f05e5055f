/**
 * fetchImagenetWeights(): downloads the official ResNet50 ImageNet weights (where they are and
 * how to check them: model-store/official-weights.ts) into a cache, or reuses a verified cached
 * copy, and imports them into a model store. The store is replaced only by a complete
 * import (store.ts swaps folders), so any failure here leaves the existing store untouched.
 */
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelManifest } from '../../model-store/store.ts';
import { KERAS_RESNET50_FILE, KERAS_RESNET50_MD5, KERAS_RESNET50_URL, MD5_PATTERN } from '../../model-store/official-weights.ts';
import { downloadFile, type DownloadEvent, type DownloadResult } from './download.ts';
import { fileMd5 } from './file-md5.ts';

/** models/cache/ in this repo (git-ignored, like every folder under models/ but calibration/). */
export const DEFAULT_CACHE_DIR = fileURLToPath(new URL('../../models/cache/', import.meta.url));

/** What fetchImagenetWeights logs with; a pino Logger fits. */
export interface FetchLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface FetchImagenetOptions {
  modelDir: string;
  url?: string;
  md5?: string;
  /** Where the .h5 (and its .part while downloading) is kept. Default models/cache/. */
  cacheDir?: string;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  retries?: number;
  retryBaseMs?: number;
  /** Passed to the importer; tiny-resnet is for tests. Default resnet50. */
  architecture?: 'resnet50' | 'tiny-resnet';
  signal?: AbortSignal;
  /**
   * Stages 'download' (bytes; total 0 while the server has not said the size), 'verify',
   * then the importer's own stages.
   */
  onProgress?: (stage: string, done: number, total: number) => void;
  log?: FetchLog;
}

export interface FetchImagenetResult {
  manifest: ModelManifest;
  /** The verified .h5 in the cache. */
  file: string;
  /** Undefined when a verified cached copy was used. */
  download?: DownloadResult;
}

/** The importer could not be loaded or failed; the download itself was fine. */
export class ImportError extends Error {
  constructor(
    message: string,
    /** True when the file was refused (a KerasImportError): show the message alone, it is no bug. */
    readonly userError: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ImportError';
  }
}

/**
 * The cache file for a URL: the URL's own file name when it has a usable one (a mirror's file
 * keeps its name). Two different files of the same name are told apart by the md5 check.
 */
export function cacheFileFor(url: string, cacheDir: string = DEFAULT_CACHE_DIR): string {
  let name = '';
  try {
    name = path.posix.basename(new URL(url).pathname);
  } catch {
    // Not a URL: the download will say so; any name does until then.
  }
  if (!/^[\w.-]+\.h5$/.test(name)) name = KERAS_RESNET50_FILE;
  return path.join(cacheDir, name);
}

const quiet: FetchLog = { info: () => {}, warn: () => {} };

export interface CachedWeightsFile {
  /** The verified .h5 in the cache. */
  file: string;
  url: string;
  md5: string;
  /** Undefined when a verified cached copy was used. */
  download?: DownloadResult;
}

/** Makes sure the cache holds the weights file with the expected md5, downloading it if not. */
export async function downloadImagenetWeights(options: Omit<FetchImagenetOptions, 'modelDir' | 'architecture'>): Promise<CachedWeightsFile> {
  const url = options.url ?? KERAS_RESNET50_URL;
  const md5 = (options.md5 ?? KERAS_RESNET50_MD5).toLowerCase();
  if (!MD5_PATTERN.test(md5)) throw new Error(`not an md5 (32 hex digits): ${JSON.stringify(options.md5)}`);
  const log = options.log ?? quiet;
  const file = cacheFileFor(url, options.cacheDir);

  if (await isVerifiedCopy(file, md5, log)) {
    log.info({ file, md5 }, 'using the cached weights file (md5 checked)');
    return { file, url, md5 };
  }
  log.info({ url, file, md5 }, 'downloading the ImageNet weights');
  const download = await downloadFile(url, file, {
    md5,
    connectTimeoutMs: options.connectTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    retries: options.retries,
    retryBaseMs: options.retryBaseMs,
    signal: options.signal,
    onProgress: (done, total) => options.onProgress?.('download', done, total ?? 0),
    onEvent: (event) => logEvent(event, log, options.onProgress),
  });
  log.info({ file, bytes: download.bytes, md5: download.md5, attempts: download.attempts }, 'weights downloaded, md5 checked');
  return { file, url, md5, download };
}

/** Downloads (or reuses) the weights file, then imports it into `modelDir`. */
export async function fetchImagenetWeights(options: FetchImagenetOptions): Promise<FetchImagenetResult> {
  const { file, url, md5, download } = await downloadImagenetWeights(options);
  const log = options.log ?? quiet;
  const importer = await loadImporter();
  log.info({ file, model_dir: options.modelDir }, 'importing the weights');
  try {
    const manifest = await importer(file, {
      modelDir: options.modelDir,
      source: { url, md5 },
      architecture: options.architecture,
      onProgress: options.onProgress,
    });
    return { manifest, file, download };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const userError = (error as { name?: unknown } | null)?.name === 'KerasImportError';
    throw new ImportError(`importing ${file} into ${options.modelDir} failed: ${message}`, userError, { cause: error });
  }
}

/** True when `file` exists with the expected md5; a stale or corrupt copy is deleted. */
async function isVerifiedCopy(file: string, md5: string, log: FetchLog): Promise<boolean> {
  try {
    await stat(file);
  } catch {
    return false;
  }
  const actual = await fileMd5(file);
  if (actual === md5) return true;
  log.warn({ file, expected_md5: md5, actual_md5: actual }, 'the cached weights file has another md5; downloading it again');
  await rm(file, { force: true });
  return false;
}

function logEvent(event: DownloadEvent, log: FetchLog, onProgress: FetchImagenetOptions['onProgress']): void {
  switch (event.type) {
    case 'resume':
      log.info({ from_bytes: event.fromBytes }, 'resuming the download');
      break;
    case 'restart':
      log.warn({ reason: event.reason }, 'restarting the download from the start');
      break;
    case 'retry':
      log.warn({ retry: event.retry, of: event.of, delay_ms: event.delayMs, kind: event.error.kind, error: event.error.message }, 'download attempt failed; retrying');
      break;
    case 'verify':
      onProgress?.('verify', 0, event.bytes);
      break;
  }
}

type Importer = typeof import('../keras/import-weights.ts').importKerasWeightsInWorker;

/**
 * Loaded on first use, so neither the download nor a hub that already has a model loads the
 * importer's modules. The import itself runs in a worker thread: it holds hundreds of MB
 * (HDF5 reader, weights, TF.js) that are returned when the thread ends, and the caller's
 * event loop stays free for its progress bar.
 */
async function loadImporter(): Promise<Importer> {
  try {
    return (await import('../keras/import-weights.ts')).importKerasWeightsInWorker;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ImportError(`the Keras weights importer (model-tools/keras/import-weights.ts) cannot be loaded: ${message}`, false, { cause: error });
  }
}
