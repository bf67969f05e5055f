/**
 * The seed's front: a ZeroMQ ROUTER. DEALER clients send `[json]` (the ROUTER sees
 * `[identity, json]`); REQ clients add an empty delimiter (`[identity, "", json]`). Each reply
 * goes back in the envelope its request came in. Every reply goes through one SocketWriter:
 * sends never overlap (zeromq.js throws EBUSY when they do), and a reply for a client that has
 * gone away, or that does not read its replies, is dropped for that client alone and counted
 * (`resnet_hub_zmq_replies_dropped_total`); nobody else waits.
 *
 * With `security`, the ROUTER is a CURVE server: connections are encrypted, and a ZAP handler
 * (curve-auth.ts) lets in only clients whose public key is allowed.
 */
import * as zmq from 'zeromq';
import { ServiceError } from '../../shared/protocol/errors.ts';
import type { Reply } from '../../shared/protocol/classify.ts';
import type { Hub } from '../hub/hub.ts';
import type { Logger } from '../../lib/log.ts';
import { admitJson, maxJsonBytes, parseJsonRequest, peekRequestId, salvageRequestId } from './admission.ts';
import type { AdmissionLimits } from './admission.ts';
import { curvePublicKeyOf, CurveConfigError, DEFAULT_ZAP_DOMAIN, ZapAuthenticator } from './curve-auth.ts';
import type { CurveCounts, CurveSecurity } from './curve-auth.ts';
import { SocketWriter } from './socket-writer.ts';
import type { DropReason } from './socket-writer.ts';

/** Messages taken in a row before the receive loop lets the event loop run. */
const RECEIVE_BURST = 64;

interface Envelope {
  /** Routing frames, including the REQ delimiter when there was one. */
  route: Buffer[];
  body?: Buffer;
}

/** Splits a message into its route and its single body frame (undefined when it has not exactly one). */
export function splitEnvelope(frames: Buffer[]): Envelope {
  const delimiter = frames.findIndex((frame, i) => i > 0 && frame.length === 0);
  const route = delimiter === -1 ? frames.slice(0, 1) : frames.slice(0, delimiter + 1);
  const bodyFrames = frames.slice(route.length);
  return { route, body: bodyFrames.length === 1 ? bodyFrames[0] : undefined };
}

export class ZmqFront {
  private readonly router = new zmq.Router();
  private readonly writer: SocketWriter;
  private serving: Promise<void> | undefined;
  private readonly replying = new Set<Promise<void>>();
  private receiving = true;
  private lastReceivedAt = 0;
  private readonly authenticator: ZapAuthenticator | undefined;
  /** The hub's CURVE public key (Z85), what clients set as their server key; undefined without CURVE. */
  readonly curvePublicKey: string | undefined;

  constructor(
    private readonly hub: Hub,
    private readonly limits: AdmissionLimits,
    private readonly log: Logger,
    security?: CurveSecurity,
  ) {
    // Far beyond anything the hub answers (it replies payload_too_large up to here); past it
    // libzmq drops the connection instead of buffering an absurd message.
    this.router.maxMessageSize = maxJsonBytes(limits) * 2;
    this.router.linger = 1000;
    // Fail a send at once (dropping that one reply) rather than wait on a peer that cannot take
    // it; mandatory makes a vanished peer an error we can count instead of a silent discard.
    this.router.sendTimeout = 0;
    this.router.mandatory = true;
    this.writer = new SocketWriter(this.router, { onDrop: (reason, error) => this.onDrop(reason, error) });
    if (security) {
      const publicKey = curvePublicKeyOf(security.secretKey);
      if (security.publicKey !== undefined && security.publicKey !== publicKey) {
        throw new CurveConfigError('the CURVE public key given is not the one of the secret key');
      }
      const zapDomain = security.zapDomain ?? DEFAULT_ZAP_DOMAIN;
      this.authenticator = new ZapAuthenticator(security.clientKeys, log, { zapDomain });
      this.router.curveServer = true;
      this.router.curveSecretKey = security.secretKey;
      this.router.zapDomain = zapDomain;
      this.curvePublicKey = publicKey;
    }
  }

  /** CURVE connections accepted and refused so far; undefined without CURVE. */
  get curveCounts(): CurveCounts | undefined {
    return this.authenticator?.counts();
  }

  async bind(endpoint: string): Promise<string> {
    if (this.authenticator) {
      // Before the ROUTER binds: without a ZAP handler, libzmq lets in any CURVE client.
      await this.authenticator.start();
      this.observeHandshakes(this.authenticator);
    }
    try {
      await this.router.bind(endpoint);
    } catch (error) {
      await this.authenticator?.close();
      throw error;
    }
    this.serving = this.receiveLoop();
    if (this.authenticator) {
      this.log.info(
        { public_key: this.curvePublicKey, allowed_clients: this.authenticator.allowedCount, zap_domain: this.router.zapDomain },
        'ZeroMQ CURVE on: encrypted, only allowed client keys are served',
      );
    }
    return this.router.lastEndpoint ?? endpoint;
  }

  /** Stops receiving; replies still being computed are sent before the socket closes. */
  async close(): Promise<void> {
    await this.writer.flushed();
    if (!this.router.closed) this.router.close();
    await this.serving?.catch(() => undefined);
    await this.authenticator?.close();
  }

  /**
   * Connections that fail in the CURVE handshake never reach the ZAP handler (a client with
   * no CURVE, or with the wrong server key): the socket's events tell of them.
   */
  private observeHandshakes(authenticator: ZapAuthenticator): void {
    const events = this.router.events;
    events.on('handshake:error:protocol', ({ address, error }) => {
      const reason = error.code === 'ERR_ZMTP_MECHANISM_MISMATCH' ? 'mechanism_mismatch' : error.code === 'ERR_ZMTP_CRYPTOGRAPHIC' ? 'cryptographic' : 'handshake_failed';
      authenticator.recordHandshakeFailure(reason, { endpoint: address, code: error.code });
    });
    events.on('handshake:error:other', ({ address, error }) => {
      authenticator.recordHandshakeFailure('handshake_failed', { endpoint: address, code: (error as { code?: string }).code });
    });
  }

  /** Replies dropped so far because their client could not take them, by reason. */
  get droppedReplies(): Record<DropReason, number> {
    return this.writer.drops();
  }

  /** Waits for every reply under way to be handed to the socket. */
  async flush(): Promise<void> {
    while (this.replying.size > 0) await Promise.all(this.replying);
    await this.writer.flushed();
  }

  /** Stops taking new messages but keeps the socket open for the replies still to come. */
  stopReceiving(): void {
    this.receiving = false;
    // The quiet period of settleIncoming counts from here: messages sent just before the
    // signal may not have arrived yet.
    this.lastReceivedAt = performance.now();
  }

  /**
   * Waits until no message has come in for `quietMs` (at most `maxMs`): messages that were
   * already on their way when the hub began to stop are read and answered `shutting_down`
   * rather than dropped with the socket.
   */
  async settleIncoming(quietMs = 150, maxMs = 2000): Promise<void> {
    const giveUpAt = performance.now() + maxMs;
    for (;;) {
      const quietFor = performance.now() - this.lastReceivedAt;
      if (quietFor >= quietMs || performance.now() >= giveUpAt) return;
      await new Promise((resolve) => setTimeout(resolve, quietMs - quietFor));
    }
  }

  private async receiveLoop(): Promise<void> {
    let burst = 0;
    try {
      for await (const frames of this.router) {
        // zeromq.js hands over queued messages without a trip through the event loop, so a
        // flood would keep this loop in microtasks and starve timers and the HTTP front (seen:
        // HTTP requests unanswered for seconds under a ZeroMQ storm). Let them run now and then.
        if (++burst >= RECEIVE_BURST) {
          burst = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
        this.lastReceivedAt = performance.now();
        if (!this.receiving) {
          const { route, body } = splitEnvelope(frames);
          this.send(route, this.hub.refuse(new ServiceError('shutting_down', 'the server is shutting down'), { requestId: requestIdOf(body) }));
          continue;
        }
        const receivedAt = performance.now();
        const pending = this.handle(frames, receivedAt).catch((error: unknown) => {
          // handle() answers every error it expects; this is a bug, and the request is lost.
          this.log.error({ err: error }, 'ZeroMQ request handler failed');
        });
        this.replying.add(pending);
        void pending.finally(() => this.replying.delete(pending));
      }
    } catch (error) {
      if (this.router.closed) return;
      // A hub that no longer reads its ROUTER looks alive but answers nobody: let the
      // process-wide last resort (server/last-resort.ts) drain and exit, so it is restarted.
      this.log.error({ err: error }, 'ZeroMQ receive loop stopped');
      throw error;
    }
  }

  private async handle(frames: Buffer[], receivedAt: number): Promise<void> {
    const { route, body } = splitEnvelope(frames);
    let reply: Reply;
    if (!body) {
      reply = this.hub.refuse(
        new ServiceError('invalid_frames', `expected one JSON frame after the envelope, got ${frames.length - route.length}`),
      );
    } else {
      let requestId: string | undefined;
      try {
        // Before the request is parsed: a flood of retries against a full queue is refused
        // for the cost of finding its id, not of parsing and decoding its image.
        const refusal = this.hub.refusalNow();
        const peeked = refusal && peekRequestId(body);
        if (refusal && peeked) {
          requestId = peeked.requestId;
          throw refusal;
        }
        const { value } = parseJsonRequest(body, this.limits);
        requestId = salvageRequestId(value);
        if (refusal) throw refusal;
        const request = admitJson(value, this.limits);
        reply = await this.hub.classify(request, receivedAt);
      } catch (error) {
        reply = await this.hub.refusePaced(error, { requestId });
      }
    }
    this.send(route, reply);
  }

  private send(route: Buffer[], reply: Reply): void {
    this.writer.write([...route, JSON.stringify(reply)]);
  }

  private onDrop(reason: DropReason, error: unknown): void {
    // Expected whenever clients vanish or stop reading: counted, and logged only at debug.
    this.log.debug({ reason, code: (error as { code?: string } | undefined)?.code }, 'ZeroMQ reply dropped');
  }
}

/** The request id of a message the hub will not run, so that even its refusal names it. */
function requestIdOf(body: Buffer | undefined): string | undefined {
  if (!body) return undefined;
  const peeked = peekRequestId(body);
  if (peeked) return peeked.requestId;
  try {
    return salvageRequestId(JSON.parse(body.toString('utf8')));
  } catch {
    return undefined;
  }
}
