/**
 * One hub as the client sees it: a DEALER connected to it alone, whether it is reachable now,
 * whether it takes new work, and the requests outstanding on it. It knows nothing of retries:
 * it reports messages and connection changes to its owner.
 */
import * as zmq from 'zeromq';
import type { CurveKeys, HubStats } from './types.ts';

export interface ConnectionEvents {
  message(hub: HubConnection, body: Buffer): void;
  /** The ZMTP handshake with a (possibly new) hub process completed. */
  up(hub: HubConnection): void;
  /** The connection dropped: whatever was sent on it will not be answered. */
  down(hub: HubConnection): void;
}

export interface ConnectionOptions {
  heartbeatMs: number;
  curve?: CurveKeys;
}

export class HubConnection {
  private readonly socket: zmq.Dealer;
  private readonly receiving: Promise<void>;
  connected = false;
  mode: HubStats['mode'] = 'active';
  /** No new request before this time (performance.now()), after `overloaded` or `not_ready`. */
  coolUntil = 0;
  /** Wire ids sent here and not answered yet. */
  readonly live = new Set<string>();
  hubId: string | undefined;
  readonly counts = { sent: 0, results: 0, silences: 0, disconnects: 0, dropped: 0 };
  readonly errors: Record<string, number> = {};
  readonly refusals: Record<string, number> = {};

  constructor(
    readonly endpoint: string,
    options: ConnectionOptions,
    private readonly events: ConnectionEvents,
  ) {
    this.socket = new zmq.Dealer({
      // Queue only on a live connection: a send to a hub that is down fails at once (EAGAIN)
      // and goes elsewhere, instead of waiting in a pipe for a hub that may never come back.
      immediate: true,
      sendTimeout: 0,
      linger: 0,
      // Bounded by the caller's own concurrency, not by libzmq's default of 1000.
      sendHighWaterMark: 0,
      receiveHighWaterMark: 0,
      ...(options.heartbeatMs > 0
        ? { heartbeatInterval: options.heartbeatMs, heartbeatTimeout: options.heartbeatMs * 3, heartbeatTimeToLive: options.heartbeatMs * 3 }
        : {}),
      ...(options.curve
        ? { curveServerKey: options.curve.serverKey, curvePublicKey: options.curve.publicKey, curveSecretKey: options.curve.secretKey }
        : {}),
    });
    this.socket.events.on('handshake', () => {
      this.connected = true;
      // A handshake is a new hub process (or the same one after a network blip): whatever it
      // said before (shutting down, overloaded) no longer holds.
      if (this.mode === 'draining') this.mode = 'active';
      this.coolUntil = 0;
      this.events.up(this);
    });
    this.socket.events.on('disconnect', () => {
      this.connected = false;
      this.counts.disconnects++;
      this.events.down(this);
    });
    this.socket.connect(endpoint);
    this.receiving = this.receiveLoop();
  }

  /** Reachable, taking new work, and not cooling down. */
  available(now: number): boolean {
    return this.connected && this.mode === 'active' && now >= this.coolUntil;
  }

  get closed(): boolean {
    return this.socket.closed;
  }

  /** Queues one request frame; false when it cannot be queued now (no live connection). */
  async send(frame: string): Promise<boolean> {
    if (this.socket.closed) return false;
    try {
      await this.socket.send(frame);
      this.counts.sent++;
      return true;
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code === 'EAGAIN') return false;
      throw error;
    }
  }

  async close(): Promise<void> {
    if (!this.socket.closed) this.socket.close();
    await this.receiving;
  }

  stats(): HubStats {
    return {
      endpoint: this.endpoint,
      ...(this.hubId !== undefined ? { hubId: this.hubId } : {}),
      connected: this.connected,
      mode: this.mode,
      outstanding: this.live.size,
      sent: this.counts.sent,
      results: this.counts.results,
      errors: { ...this.errors },
      refusals: { ...this.refusals },
      silences: this.counts.silences,
      disconnects: this.counts.disconnects,
      dropped: this.counts.dropped,
    };
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.socket) this.events.message(this, frames[frames.length - 1]);
    } catch {
      // Closing the socket may end the loop with an error; any other end leaves the hub
      // unusable, which its owner must hear about as a drop.
    }
    if (!this.socket.closed && this.connected) {
      this.connected = false;
      this.events.down(this);
    }
  }
}
