/**
 * The one error a download throws, with a `kind` so callers can act on the cause without
 * parsing messages: `npm start` falls back to the untrained model on any of them, and says
 * "offline" only when the server was never reached.
 */

export type DownloadErrorKind =
  /** The server could not be reached at all: DNS failure, connection refused, connect timeout, no route. */
  | 'offline'
  /** The server answered with a status we cannot use (4xx, 5xx after the retries, too many redirects). */
  | 'http'
  /** The connection dropped or stalled mid-transfer, and the retries ran out. */
  | 'network'
  /** The complete file's md5 is not the expected one; the file was deleted. */
  | 'checksum'
  /** The caller's AbortSignal fired; the partial file is kept for a later resume. */
  | 'aborted';

export class DownloadError extends Error {
  constructor(
    readonly kind: DownloadErrorKind,
    message: string,
    readonly details: { url?: string; status?: number; code?: string; expectedMd5?: string; actualMd5?: string } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DownloadError';
  }
}

export function isDownloadError(error: unknown, kind?: DownloadErrorKind): error is DownloadError {
  return error instanceof DownloadError && (kind === undefined || error.kind === kind);
}

/** Socket error codes meaning "we cannot reach that host from here" rather than "it broke mid-way". */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EHOSTDOWN']);

export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isUnreachable(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && UNREACHABLE_CODES.has(code);
}
