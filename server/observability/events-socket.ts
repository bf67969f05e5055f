/**
 * `/ws/events`: the live event stream to web pages (classify page, dashboard). Each page gets a
 * snapshot on connect, then every event. A page that cannot keep up (its socket's buffer is
 * full) misses events rather than making the hub buffer without bound; the next `stats`
 * event, every second, carries the full executor list and counts, so it recovers by itself.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { EVENTS_PATH } from '../../shared/protocol/events.ts';
import type { HubEvent } from '../../shared/protocol/events.ts';
import type { EventFeed } from './event-feed.ts';
import type { Logger } from '../../lib/log.ts';
import type { UpgradeHandler } from '../front/http-front.ts';
import { DEFAULT_ALLOWED_ORIGINS, originAllowed, parseOriginRule, presentsToken, refuseUpgrade, tokenDigest } from '../front/upgrade-guard.ts';

/** Beyond this many bytes waiting to be sent to a page, its events are skipped. */
const MAX_BUFFERED_BYTES = 256 * 1024;
const MAX_CONNECTIONS = 64;
const PING_INTERVAL_MS = 30_000;

export interface EventsSocketOptions {
  onUpgrade: (path: string, handler: UpgradeHandler) => void;
  feed: EventFeed;
  log: Logger;
  allowedOrigins?: readonly string[];
  /** When set, a page must present it (`?token=` or as a subprotocol). */
  token?: string;
}

export class EventsSocket {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024, perMessageDeflate: false });
  private readonly clients = new Set<WebSocket>();
  private readonly alive = new WeakSet<WebSocket>();
  private readonly originRules;
  private readonly tokenDigest: Buffer | undefined;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly log: Logger;
  private accepting = true;
  private skipped = 0;

  constructor(private readonly options: EventsSocketOptions) {
    this.log = options.log.child({ component: 'events' });
    this.originRules = (options.allowedOrigins ?? DEFAULT_ALLOWED_ORIGINS).map(parseOriginRule);
    this.tokenDigest = options.token ? tokenDigest(options.token) : undefined;
    options.feed.on('event', (event) => this.broadcast(event));
    options.onUpgrade(EVENTS_PATH, (request, socket, head) => this.handleUpgrade(request, socket, head));
    this.pingTimer = setInterval(() => this.ping(), PING_INTERVAL_MS);
    this.pingTimer.unref();
  }

  get connections(): number {
    return this.clients.size;
  }

  async close(): Promise<void> {
    this.accepting = false;
    clearInterval(this.pingTimer);
    const closed = [...this.clients].map((ws) => new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1001, 'hub stopping');
      // A page that does not answer the close handshake must not hold the hub's exit.
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 1000).unref();
    }));
    await Promise.all(closed);
    this.wss.close();
  }

  private handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!this.accepting) return refuseUpgrade(socket, 503, 'the hub is shutting down');
    if (this.clients.size >= MAX_CONNECTIONS) return refuseUpgrade(socket, 503, 'too many event listeners');
    if (!originAllowed(request.headers.origin, request.headers.host, this.originRules)) return refuseUpgrade(socket, 403, 'origin not allowed');
    if (this.tokenDigest && !presentsToken(request, this.tokenDigest)) return refuseUpgrade(socket, 401, 'a token is required');
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws));
  }

  private accept(ws: WebSocket): void {
    this.clients.add(ws);
    this.alive.add(ws);
    ws.on('pong', () => this.alive.add(ws));
    ws.on('close', () => this.clients.delete(ws));
    // Pages only listen; a socket error just ends that page's stream.
    ws.on('error', () => ws.terminate());
    ws.send(JSON.stringify(this.options.feed.snapshot()));
  }

  private broadcast(event: HubEvent): void {
    if (this.clients.size === 0) return;
    const text = JSON.stringify(event);
    for (const ws of this.clients) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        if (this.skipped++ % 1000 === 0) this.log.warn({ skipped: this.skipped }, 'a page is not keeping up with the event stream; skipping events for it');
        continue;
      }
      ws.send(text);
    }
  }

  private ping(): void {
    for (const ws of this.clients) {
      if (!this.alive.has(ws)) {
        ws.terminate();
        continue;
      }
      this.alive.delete(ws);
      ws.ping();
    }
  }
}
