/**
 * Downloads one URL to a file, the way a 100 MiB model should be fetched over an unreliable
 * network: bytes go to `<dest>.part`, which a later attempt (or a later run) resumes with a
 * Range request; network errors, 5xx and dropped or stalled connections are retried with
 * exponential backoff; the complete file's md5 is checked before it is renamed to `dest`, so
 * `dest` only ever holds a verified file.
 */
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { backoffDelay } from '../../shared/backoff.ts';
import { waitOrAbort } from './backoff.ts';
import { parseContentRange } from './content-range.ts';
import { DownloadError } from './download-error.ts';
import { fileMd5 } from './file-md5.ts';
import { openGet, toDownloadError } from './http-get.ts';

export interface DownloadOptions {
  /** Expected md5 (hex) of the whole file. Without it the file is not verified. */
  md5?: string;
  /** DNS + TCP connect limit per attempt. Default 10 s. */
  connectTimeoutMs?: number;
  /** Longest silence once connected before the connection counts as dropped. Default 30 s. */
  idleTimeoutMs?: number;
  /** Retries after consecutive failed attempts (an attempt that received bytes resets the count). Default 5. */
  retries?: number;
  /** First backoff delay; doubles per consecutive failure, with jitter. Default 1 s. */
  retryBaseMs?: number;
  /** Backoff ceiling. Default 30 s. */
  retryMaxMs?: number;
  /** Redirects followed per attempt. Default 5. */
  maxRedirects?: number;
  signal?: AbortSignal;
  /** Bytes of the file on disk so far, and the file's size when the server says it. */
  onProgress?: (doneBytes: number, totalBytes: number | undefined) => void;
  /** Resumes, restarts and retries, for logs. */
  onEvent?: (event: DownloadEvent) => void;
}

export type DownloadEvent =
  | { type: 'resume'; fromBytes: number }
  | { type: 'restart'; reason: string }
  | { type: 'retry'; retry: number; of: number; delayMs: number; error: DownloadError }
  | { type: 'verify'; bytes: number };

export interface DownloadResult {
  file: string;
  bytes: number;
  md5: string;
  /** HTTP attempts made (1 when nothing went wrong). */
  attempts: number;
  /** Bytes already on disk from an earlier run when this one started. */
  resumedFromBytes: number;
}

/** The `.part` file a download of `dest` writes to and resumes from. */
export function partFileOf(dest: string): string {
  return `${dest}.part`;
}

type AttemptOutcome = { type: 'complete'; bytes: number } | { type: 'restart'; reason: string };

/** Restarts from byte 0 (the server ignored or botched a Range) allowed per download, so a broken server cannot loop us. */
const MAX_RESTARTS = 3;

export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const settings = {
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
    retries: options.retries ?? 5,
    backoff: { baseMs: options.retryBaseMs ?? 1000, maxMs: options.retryMaxMs ?? 30_000 },
    maxRedirects: options.maxRedirects ?? 5,
  };
  const expectedMd5 = options.md5?.toLowerCase();
  const part = partFileOf(dest);

  const resumedFromBytes = await sizeOf(part);
  let attempts = 0;
  let failures = 0;
  let restarts = 0;
  let reachedServer = false;
  let resumedAny = false;
  let restartedAfterMismatch = false;

  for (;;) {
    if (options.signal?.aborted) throw toDownloadError(options.signal.reason, { url, connected: false, signal: options.signal });
    attempts++;
    const offset = await sizeOf(part);
    if (offset > 0) {
      resumedAny = true;
      options.onEvent?.({ type: 'resume', fromBytes: offset });
    }
    const progress = { reachedServer: false, receivedBytes: 0 };
    let outcome: AttemptOutcome;
    try {
      outcome = await attempt(url, part, offset, settings, options, progress);
    } catch (error) {
      reachedServer ||= progress.reachedServer;
      if (!(error instanceof DownloadError) || !isRetryable(error, reachedServer)) throw error;
      // An attempt that moved the file forward was not wasted: count from one again.
      failures = progress.receivedBytes > 0 ? 1 : failures + 1;
      if (failures > settings.retries) throw error;
      const delayMs = backoffDelay(failures, settings.backoff);
      options.onEvent?.({ type: 'retry', retry: failures, of: settings.retries, delayMs, error });
      try {
        await waitOrAbort(delayMs, options.signal);
      } catch (abort) {
        throw toDownloadError(abort, { url, connected: false, signal: options.signal });
      }
      continue;
    }
    reachedServer = true;

    if (outcome.type === 'restart') {
      if (++restarts > MAX_RESTARTS) throw new DownloadError('http', `${url}: ${outcome.reason}, ${MAX_RESTARTS} times; giving up`, { url });
      options.onEvent?.({ type: 'restart', reason: outcome.reason });
      await rm(part, { force: true });
      continue;
    }

    options.onEvent?.({ type: 'verify', bytes: outcome.bytes });
    const actualMd5 = await fileMd5(part);
    if (expectedMd5 !== undefined && actualMd5 !== expectedMd5) {
      await rm(part, { force: true });
      // A resumed .part may be the start of another version of the file (the server's copy
      // changed between runs); one clean download tells that apart from a wrong checksum.
      if (resumedAny && !restartedAfterMismatch) {
        restartedAfterMismatch = true;
        resumedAny = false;
        options.onEvent?.({ type: 'restart', reason: `md5 ${actualMd5} after resuming, expected ${expectedMd5}; downloading it whole once` });
        continue;
      }
      throw new DownloadError(
        'checksum',
        `md5 mismatch for ${url}: expected ${expectedMd5}, got ${actualMd5} (${outcome.bytes} bytes); the download was deleted`,
        { url, expectedMd5, actualMd5 },
      );
    }
    await rename(part, dest);
    return { file: dest, bytes: outcome.bytes, md5: actualMd5, attempts, resumedFromBytes };
  }
}

function isRetryable(error: DownloadError, reachedServer: boolean): boolean {
  switch (error.kind) {
    case 'network':
      return true;
    // Never reached the server in this run: we are offline and say so at once. Reached it
    // before: a blip in the middle of a download, worth retrying.
    case 'offline':
      return reachedServer;
    case 'http': {
      const status = error.details.status ?? 0;
      return status >= 500 || status === 408 || status === 429;
    }
    default:
      return false;
  }
}

interface Settings {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxRedirects: number;
}

/** One GET: appends to (or rewrites) the .part file until the server's body ends. */
async function attempt(
  url: string,
  part: string,
  offset: number,
  settings: Settings,
  options: DownloadOptions,
  progress: { reachedServer: boolean; receivedBytes: number },
): Promise<AttemptOutcome> {
  const headers: Record<string, string> = {
    // Ranges count bytes of the encoded body: ask for none, so they are bytes of the file.
    'Accept-Encoding': 'identity',
    'User-Agent': 'resnet-hub-model-fetch',
  };
  if (offset > 0) headers.Range = `bytes=${offset}-`;
  const { response, url: finalUrl } = await openGet(url, { ...settings, headers, signal: options.signal });
  progress.reachedServer = true;
  const status = response.statusCode ?? 0;

  let startAt: number;
  let total: number | undefined;
  if (status === 200) {
    startAt = 0;
    total = contentLength(response.headers['content-length']);
    if (offset > 0) options.onEvent?.({ type: 'restart', reason: 'the server ignored the Range request; downloading from the start' });
  } else if (status === 206) {
    const range = parseContentRange(response.headers['content-range']);
    if (range?.kind !== 'range' || range.start !== offset) {
      response.resume();
      return { type: 'restart', reason: `the server answered Range bytes=${offset}- with Content-Range ${JSON.stringify(response.headers['content-range'])}` };
    }
    startAt = offset;
    total = range.total;
  } else if (status === 416 && offset > 0) {
    response.resume();
    const range = parseContentRange(response.headers['content-range']);
    // Nothing left to send: the .part is complete if it has exactly the server's size.
    if (range?.kind === 'unsatisfied' && range.total === offset) {
      options.onProgress?.(offset, offset);
      return { type: 'complete', bytes: offset };
    }
    return { type: 'restart', reason: `the partial file (${offset} bytes) does not fit the server's (${range?.kind === 'unsatisfied' ? range.total : 'unknown'} bytes)` };
  } else {
    response.resume();
    throw new DownloadError('http', `HTTP ${status}${response.statusMessage ? ` ${response.statusMessage}` : ''} for ${finalUrl}`, { url: finalUrl, status });
  }

  let done = startAt;
  let writeError: unknown;
  // Only now: an offline attempt leaves no empty folders behind.
  await mkdir(path.dirname(path.resolve(part)), { recursive: true });
  const handle = await open(part, startAt === 0 ? 'w' : 'a');
  try {
    options.onProgress?.(done, total);
    try {
      for await (const chunk of response) {
        try {
          await handle.write(chunk as Buffer);
        } catch (error) {
          // The disk failed, not the network: no retry will help.
          writeError = error;
          break;
        }
        done += (chunk as Buffer).byteLength;
        progress.receivedBytes += (chunk as Buffer).byteLength;
        options.onProgress?.(done, total);
      }
    } catch (error) {
      const failure = toDownloadError(error, { url: finalUrl, connected: true, signal: options.signal });
      if (failure.kind !== 'network' || failure.details.code === 'ESTALLED') throw failure;
      const cause = error instanceof Error ? error.message : String(error);
      throw new DownloadError('network', `connection to ${new URL(finalUrl).host} dropped after ${done} of ${total ?? '?'} bytes (${cause})`, failure.details, {
        cause: error,
      });
    }
    if (writeError) throw writeError;
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (total !== undefined && done !== total) {
    throw new DownloadError('network', `connection to ${new URL(finalUrl).host} closed after ${done} of ${total} bytes`, { url: finalUrl });
  }
  return { type: 'complete', bytes: done };
}

function contentLength(header: string | undefined): number | undefined {
  return header !== undefined && /^\d+$/.test(header) ? Number(header) : undefined;
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOENT') return 0;
    throw error;
  }
}
