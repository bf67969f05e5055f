/**
 * Who may open a WebSocket on the hub: browsers only from allowed origins (WebSockets are not
 * subject to CORS, so without this any web page the user visits could connect to a hub on
 * localhost), and, when a token is configured, only peers presenting it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { UpgradeRefusal } from '../../shared/protocol/status.ts';

/** Pages served from this machine, on any port (the hub itself, Vite's dev server). */
export const DEFAULT_ALLOWED_ORIGINS: readonly string[] = ['http://localhost:*', 'http://127.0.0.1:*', 'http://[::1]:*'];

export type OriginRule = { any: true } | { protocol: string; hostname: string } | { origin: string };

/** `*`, an exact origin (`https://hub.example`), or any port of a host (`http://localhost:*`). */
export function parseOriginRule(pattern: string): OriginRule {
  if (pattern === '*') return { any: true };
  if (pattern.endsWith(':*')) {
    const url = new URL(pattern.slice(0, -2));
    return { protocol: url.protocol, hostname: url.hostname };
  }
  return { origin: new URL(pattern).origin };
}

export function originAllowed(origin: string | undefined, host: string | undefined, rules: readonly OriginRule[]): boolean {
  // Browsers always send Origin on a WebSocket; a client without one is not a browser, and
  // could forge the header anyway. Origin guards against pages in browsers; the token guards the rest.
  if (origin === undefined) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // includes "null" (sandboxed frames, file:)
  }
  if (host !== undefined && url.host === host.toLowerCase()) return true;
  return rules.some((rule) => {
    if ('any' in rule) return true;
    if ('origin' in rule) return url.origin === rule.origin;
    return url.protocol === rule.protocol && url.hostname === rule.hostname;
  });
}

/** Tokens are kept and compared as digests, so lengths never differ and timingSafeEqual applies. */
export function tokenDigest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * Browsers cannot set headers on a WebSocket, so the token may come as `?token=`, as a
 * subprotocol, or (other programs) as `Authorization: Bearer`. Every candidate is compared, so
 * the time says nothing about which one matched.
 */
export function presentsToken(request: IncomingMessage, expected: Buffer): boolean {
  const query = new URL(request.url ?? '/', 'http://localhost').searchParams.get('token');
  const protocols = (request.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? '')?.[1];
  let matched = false;
  for (const candidate of [query, bearer, ...protocols]) {
    if (candidate && timingSafeEqual(tokenDigest(candidate), expected)) matched = true;
  }
  return matched;
}

export function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  // The peer may hang up first; an unhandled socket error would take the hub down.
  socket.on('error', () => {});
  const body = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  // end() only half-closes: a peer that never reads nor closes would keep the socket (and the
  // HTTP server's close) waiting for good. It has had its answer; after a moment it is cut off.
  setTimeout(() => socket.destroy(), REFUSED_UPGRADE_LINGER_MS).unref();
}

const REFUSED_UPGRADE_LINGER_MS = 2000;

export interface UpgradeGate {
  /** False once the hub is stopping. */
  accepting: boolean;
  /** At the connection limit. */
  full: boolean;
  originRules: readonly OriginRule[];
  /** Set when a token is required. */
  tokenDigest: Buffer | undefined;
}

/** Why an upgrade is refused, with its HTTP status; undefined when it may go ahead. */
export function upgradeRefusal(request: IncomingMessage, gate: UpgradeGate): { kind: UpgradeRefusal; status: number; message: string } | undefined {
  if (!gate.accepting) return { kind: 'stopping', status: 503, message: 'the hub is shutting down' };
  if (gate.full) return { kind: 'capacity', status: 503, message: 'too many volunteers connected' };
  if (!originAllowed(request.headers.origin, request.headers.host, gate.originRules)) return { kind: 'origin', status: 403, message: 'origin not allowed' };
  if (gate.tokenDigest && !presentsToken(request, gate.tokenDigest)) return { kind: 'token', status: 401, message: 'a volunteer token is required' };
  return undefined;
}
