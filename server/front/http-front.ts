/**
 * The HTTP side of the hub: health and readiness probes, the classify API (raw image,
 * multipart upload, or the ZeroMQ JSON), and status.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { DEFAULT_TOP, MAX_TOP } from '../../shared/labels.ts';
import type { Reply } from '../../shared/protocol/classify.ts';
import { ServiceError } from '../../shared/protocol/errors.ts';
import type { Hub } from '../hub/hub.ts';
import type { Logger } from '../../lib/log.ts';
import { admitImageBytes, admitJson, maxJsonBytes, parseJsonRequest, salvageRequestId } from './admission.ts';
import type { AdmissionLimits } from './admission.ts';
import type { AdmittedRequest } from '../hub/admitted-request.ts';
import { ClientGoneError, discardBody, readBody, readMultipartFile } from './http-body.ts';
import { presentsToken, tokenDigest } from './upgrade-guard.ts';
import { HTTP_STATUS_BY_CODE } from './http-status.ts';


export interface HttpFrontOptions {
  limits: AdmissionLimits;
  status: () => unknown;
  /** Prometheus exposition of the hub's metrics. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** Looks for new weights in the store and swaps to them; undefined when the hub is stopping. */
  reloadModel?: () => unknown;
  /** When set, /api/*, /metrics and /v2/models need `Authorization: Bearer <token>` (or `?token=`, for pages). */
  apiToken?: string;
  /** The Open Inference Protocol (KServe v2) under /v2. */
  openInference?: { handle(request: IncomingMessage, response: ServerResponse, path: string): Promise<boolean> };
}

/** How much of a too-large body is read (and dropped) so that its client gets the 413, in units of the image limit. */
const DISCARD_LIMIT_FACTOR = 4;

/** Paths the API token guards; probes (/v2/health too), the web app's files and the model files stay open. */
const GUARDED_PREFIXES = ['/api/', '/metrics', '/v2/models'];

/** Answers a GET it knows (static files, model files); returns false to let the next one try. */
export type GetHandler = (request: IncomingMessage, response: ServerResponse, url: URL) => Promise<boolean> | boolean;

/** Takes over an HTTP upgrade (a WebSocket) for its path. */
export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

export class HttpFront {
  private readonly server: Server;
  private readonly getHandlers: GetHandler[] = [];
  private readonly upgradeHandlers = new Map<string, UpgradeHandler>();
  /** Sockets taken over by an upgrade (WebSockets, refused upgrades) and not closed yet. */
  private readonly upgraded = new Set<Duplex>();
  private readonly tokenDigest: Buffer | undefined;

  constructor(
    private readonly hub: Hub,
    private readonly options: HttpFrontOptions,
    private readonly log: Logger,
  ) {
    this.tokenDigest = options.apiToken ? tokenDigest(options.apiToken) : undefined;
    this.server = createServer((request, response) => {
      this.route(request, response).catch((error: unknown) => {
        this.log.error({ err: error, url: request.url }, 'HTTP handler failed');
        if (!response.headersSent) sendJson(response, 500, this.hub.refuse(error));
        else response.destroy();
      });
    });
    this.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      // Node takes its own error listener off a socket it hands over for an upgrade: a peer
      // that resets now would raise an unhandled 'error' and take the process down.
      socket.on('error', () => undefined);
      this.upgraded.add(socket);
      socket.once('close', () => this.upgraded.delete(socket));
      try {
        const path = new URL(request.url ?? '/', 'http://localhost').pathname;
        const handler = this.upgradeHandlers.get(path);
        if (handler) handler(request, socket, head);
        else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      } catch (error) {
        this.log.error({ err: error, url: request.url }, 'WebSocket upgrade failed');
        socket.destroy();
      }
    });
    // Uploads of large images over slow links still fit; idle sockets do not pile up.
    this.server.requestTimeout = 120_000;
    this.server.keepAliveTimeout = 5_000;
  }

  /** Adds GET routes tried, in order, after the API's own. */
  addGetHandler(handler: GetHandler): void {
    this.getHandlers.push(handler);
  }

  onUpgrade(path: string, handler: UpgradeHandler): void {
    this.upgradeHandlers.set(path, handler);
  }

  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  /** Called once every accepted request is answered: what is still open is idle or has sent nothing yet. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    // Browsers open connections ahead of need; one that has not sent a request is neither idle
    // nor busy to Node, and would hold the server open for good. Replies in flight get a moment.
    // Sockets handed over for an upgrade are no longer Node's HTTP connections, yet still hold
    // the server: whatever is left of them (a WebSocket peer that never reads) goes too.
    const stragglers = setTimeout(() => {
      this.server.closeAllConnections();
      for (const socket of this.upgraded) socket.destroy();
    }, 500);
    await closed;
    clearTimeout(stragglers);
  }

  private async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const route = `${request.method} ${url.pathname}`;
    if (this.tokenDigest && GUARDED_PREFIXES.some((prefix) => url.pathname.startsWith(prefix)) && !presentsToken(request, this.tokenDigest)) {
      response.setHeader('WWW-Authenticate', 'Bearer realm="resnet-hub"');
      const message = 'this hub needs an API token: send "Authorization: Bearer <token>"';
      // The Open Inference Protocol's errors are a bare string.
      return sendJson(response, 401, url.pathname.startsWith('/v2/') ? { error: message } : { error: { code: 'unauthorized', message } });
    }
    switch (route) {
      case 'GET /healthz':
        return sendJson(response, 200, { status: 'alive' });
      case 'GET /readyz':
        return sendJson(response, this.hub.isReady ? 200 : 503, { ready: this.hub.isReady });
      case 'GET /api/status':
        return sendJson(response, 200, this.options.status());
      case 'POST /api/classify':
        return this.classify(request, response, url);
      case 'POST /api/model/reload': {
        const swap = this.options.reloadModel?.();
        if (swap === undefined) return sendJson(response, 503, { error: { code: 'shutting_down', message: 'the hub is stopping; no model swap' } });
        // Accepted: the swap runs on; its steps show in /api/status and on /ws/events.
        return sendJson(response, 202, { swap });
      }
      case 'GET /metrics':
        if (this.options.metrics) return sendMetrics(response, await this.options.metrics());
        return sendJson(response, 404, { error: { code: 'not_found', message: 'metrics are not enabled' } });
      default:
        if (this.options.openInference && (await this.options.openInference.handle(request, response, url.pathname))) return;
        if (request.method === 'GET' || request.method === 'HEAD') {
          for (const handler of this.getHandlers) if (await handler(request, response, url)) return;
        }
        return sendJson(response, 404, { error: { code: 'not_found', message: `no route for ${route}` } });
    }
  }

  private async classify(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const receivedAt = performance.now();
    // Known before admission where possible, so that even an error reply echoes it.
    const context: { requestId?: string } = { requestId: url.searchParams.get('request_id') ?? undefined };
    let reply: Reply;
    try {
      // Asked before the body is read: under a flood, refusing costs no upload buffering.
      const refusal = this.hub.refusalNow();
      if (refusal) throw refusal;
      const admitted = await this.admit(request, url, context);
      reply = await this.hub.classify(admitted, receivedAt);
    } catch (error) {
      if (error instanceof ClientGoneError) {
        this.log.debug({ request_id: context.requestId }, 'HTTP client left before its request was complete');
        return;
      }
      reply = await this.hub.refusePaced(error, { requestId: context.requestId });
    }
    const status = 'error' in reply ? HTTP_STATUS_BY_CODE[reply.error.code] : 200;
    // A refused body may still be arriving: read it to its end so the client sees the answer,
    // unless it is absurdly large, in which case closing is cheaper than reading it.
    if ((status === 413 || !request.complete) && !(await discardBody(request, DISCARD_LIMIT_FACTOR * this.options.limits.maxImageBytes))) {
      response.setHeader('Connection', 'close');
    }
    sendJson(response, status, reply);
  }

  private async admit(request: IncomingMessage, url: URL, context: { requestId?: string }): Promise<AdmittedRequest> {
    const { limits } = this.options;
    const contentType = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (contentType === 'multipart/form-data') {
      const upload = await readMultipartFile(request, limits.maxImageBytes);
      context.requestId = upload.fields.request_id ?? context.requestId;
      return withQuery(admitImageBytes(upload.bytes, parseTop(upload.fields.top ?? url.searchParams.get('top')), limits), url, upload.fields);
    }
    if (contentType.startsWith('image/') || contentType === 'application/octet-stream') {
      const bytes = await readBody(request, limits.maxImageBytes);
      return withQuery(admitImageBytes(bytes, parseTop(url.searchParams.get('top')), limits), url, {});
    }
    if (contentType === 'application/json' || contentType === '') {
      const body = await readBody(request, maxJsonBytes(limits));
      const { value } = parseJsonRequest(body, limits);
      context.requestId = salvageRequestId(value) ?? context.requestId;
      return admitJson(value, limits);
    }
    throw new ServiceError(
      'invalid_request',
      `unsupported Content-Type ${contentType}; send an image/* body, multipart/form-data with a "file" field, or JSON`,
    );
  }
}

function parseTop(value: string | null | undefined): number {
  if (value === null || value === undefined || value === '') return DEFAULT_TOP;
  const top = Number(value);
  if (!Number.isInteger(top) || top < 1 || top > MAX_TOP) {
    throw new ServiceError('invalid_top', `top must be an integer from 1 to ${MAX_TOP}`);
  }
  return top;
}

function withQuery(request: AdmittedRequest, url: URL, fields: Record<string, string>): AdmittedRequest {
  const requestId = fields.request_id ?? url.searchParams.get('request_id') ?? undefined;
  const offload = (fields.offload ?? url.searchParams.get('offload')) !== 'false';
  return { ...request, requestId, offload };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  // The client may have hung up while its request ran: nothing to write to.
  if (response.destroyed || response.writableEnded) return;
  const text = JSON.stringify(body);
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  response.end(text);
}

function sendMetrics(response: ServerResponse, metrics: { contentType: string; body: string }): void {
  response.writeHead(200, { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' });
  response.end(metrics.body);
}
