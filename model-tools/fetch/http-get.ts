/**
 * Opens one HTTP(S) GET and hands back the response once its headers arrive, following
 * redirects. Owns the two timeouts: connect (DNS + TCP, short, so "offline" is known fast) and
 * idle (no byte for that long once connected, for the whole transfer, so a stalled connection
 * is dropped and retried instead of hanging forever). Every failure comes out as a DownloadError.
 */
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { DownloadError, errorCode, isUnreachable } from './download-error.ts';

export interface GetOptions {
  headers: Record<string, string>;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxRedirects: number;
  signal?: AbortSignal;
}

export interface OpenedResponse {
  response: IncomingMessage;
  /** Where the response came from, after redirects. */
  url: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export async function openGet(url: string, options: GetOptions): Promise<OpenedResponse> {
  let current = parseHttpUrl(url);
  for (let hops = 0; ; hops++) {
    const response = await requestOnce(current, options);
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (!REDIRECTS.has(status) || !location) return { response, url: current.href };
    response.resume(); // a redirect's body is of no use; drain it so the socket closes cleanly
    if (hops >= options.maxRedirects) {
      throw new DownloadError('http', `too many redirects (more than ${options.maxRedirects}) from ${url}`, { url, status });
    }
    current = parseHttpUrl(new URL(location, current).href);
  }
}

function parseHttpUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (error) {
    throw new DownloadError('http', `not a URL: ${JSON.stringify(text)}`, { url: text }, { cause: error });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new DownloadError('http', `only http and https URLs can be downloaded, not ${url.href}`, { url: url.href });
  }
  return url;
}

function requestOnce(url: URL, options: GetOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const transport = url.protocol === 'https:' ? https : http;
    // agent: false gives every attempt a fresh socket, so the connect timeout always measures
    // a real connect and a retry never reuses a socket that just failed.
    const request = transport.request(url, { method: 'GET', headers: options.headers, agent: false, signal: options.signal });
    let connected = false;
    let response: IncomingMessage | undefined;
    const fail = (error: Error) => {
      response?.destroy(error);
      request.destroy(error);
    };
    const connectTimer = setTimeout(
      () => fail(new DownloadError('offline', `could not connect to ${url.host} within ${options.connectTimeoutMs} ms`, { url: url.href, code: 'ETIMEDOUT' })),
      options.connectTimeoutMs,
    );
    request.on('socket', (socket) => {
      const onConnect = () => {
        connected = true;
        clearTimeout(connectTimer);
        socket.setTimeout(options.idleTimeoutMs, () =>
          fail(new DownloadError('network', `no data from ${url.host} for ${options.idleTimeoutMs} ms (stalled connection)`, { url: url.href, code: 'ESTALLED' })),
        );
      };
      if (socket.connecting) socket.once('connect', onConnect);
      else onConnect();
    });
    request.on('response', (res) => {
      response = res;
      resolve(res);
    });
    request.on('error', (error) => {
      clearTimeout(connectTimer);
      reject(toDownloadError(error, { url: url.href, connected, signal: options.signal }));
    });
    request.on('close', () => clearTimeout(connectTimer));
    request.end();
  });
}

/** Turns a socket or stream error into a DownloadError saying what it means for a retry. */
export function toDownloadError(error: unknown, context: { url: string; connected: boolean; signal?: AbortSignal }): DownloadError {
  if (error instanceof DownloadError) return error;
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  if (context.signal?.aborted || (error as { name?: unknown } | null)?.name === 'AbortError') {
    return new DownloadError('aborted', `download of ${context.url} aborted`, { url: context.url, code }, { cause: error });
  }
  if (!context.connected && isUnreachable(error)) {
    return new DownloadError('offline', `cannot reach ${new URL(context.url).host}: ${message}`, { url: context.url, code }, { cause: error });
  }
  return new DownloadError('network', `connection to ${new URL(context.url).host} failed: ${message}`, { url: context.url, code }, { cause: error });
}
