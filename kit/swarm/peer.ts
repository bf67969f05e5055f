/**
 * One volunteer peer speaking the `/ws/volunteer` protocol with no browser: it says hello with
 * a claimed speed, answers each job after its own compute time, and misbehaves as real tabs
 * do (a frozen tab, a closed laptop, a lost GPU, a crawling phone, a half-open connection).
 * Its answers are well-formed but not computed: run the hub with `--verify-fraction 0`.
 */
import WebSocket from 'ws';
import { HubMessageSchema, peekJobId, JOB_HEADER_BYTES } from '../../shared/protocol/volunteer.ts';
import type { HubMessage } from '../../shared/protocol/volunteer.ts';

export const PEER_BEHAVIOURS = ['honest', 'silent', 'vanish', 'fail', 'crawl', 'half-open'] as const;
export type PeerBehaviour = (typeof PEER_BEHAVIOURS)[number];

/** How long a half-open peer takes to notice its connection is dead and start a new one. */
const HALF_OPEN_NOTICE_MS = 10_000;

export interface PeerOptions {
  /** ws://host:port/ws/volunteer */
  url: string;
  behaviour: PeerBehaviour;
  /** Real compute time per image. */
  perImageMs: number;
  /** What its hello claims (a liar about speed claims less). Default: perImageMs. */
  claimedPerImageMs?: number;
  maxBatch?: number;
  /** Misbehaving peers behave on this job (1-based) and then, after reconnectMs, come back as a new connection. */
  misbehaveOnJob?: number;
  /** Undefined: a misbehaving peer does not come back. */
  reconnectMs?: number;
  random?: () => number;
}

export interface PeerCounts {
  connections: number;
  jobs: number;
  images: number;
  /** Jobs it took and never answered (silent, vanished, half-open). */
  swallowed: number;
  failed: number;
}

/** Keeps one peer connected (reconnecting as configured) until stop(). */
export class SwarmPeer {
  readonly counts: PeerCounts = { connections: 0, jobs: 0, images: 0, swallowed: 0, failed: 0 };
  private ws: WebSocket | undefined;
  private stopped = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private jobsThisConnection = 0;
  private topK = 3;

  constructor(private readonly options: PeerOptions) {}

  start(): void {
    if (this.stopped) return;
    this.jobsThisConnection = 0;
    const ws = new WebSocket(this.options.url, { perMessageDeflate: false });
    this.ws = ws;
    this.counts.connections++;
    ws.on('message', (data, isBinary) => {
      if (isBinary) this.onJob(ws, toBytes(data));
      else this.onText(ws, String(data));
    });
    ws.on('close', () => this.onClosed(ws));
    // A refused or dropped connection is part of the swarm's weather, not an error of the bench.
    ws.on('error', () => undefined);
  }

  /** Closes for good (no reconnection); resolves once the socket is gone. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    clearInterval(this.heartbeat);
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.terminate();
    });
  }

  private onText(ws: WebSocket, text: string): void {
    let message: HubMessage;
    try {
      message = HubMessageSchema.parse(JSON.parse(text));
    } catch {
      return;
    }
    if (message.type !== 'welcome') return;
    this.topK = message.top_k;
    send(ws, {
      type: 'hello',
      protocol: message.protocol,
      backend: 'webgpu',
      model_sha256: message.model.sha256,
      per_image_ms: this.options.claimedPerImageMs ?? this.options.perImageMs,
      max_batch: Math.min(this.options.maxBatch ?? 4, message.max_batch),
      adapter: { vendor: 'swarm', description: this.options.behaviour },
    });
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => send(ws, { type: 'heartbeat', sent_at: Date.now() }), message.heartbeat_ms);
  }

  private onJob(ws: WebSocket, frame: Uint8Array): void {
    const jobId = peekJobId(frame);
    if (jobId === null) return;
    const batch = new DataView(frame.buffer, frame.byteOffset, JOB_HEADER_BYTES).getUint16(8, true);
    this.counts.jobs++;
    this.jobsThisConnection++;
    const { behaviour } = this.options;
    const misbehaveNow = behaviour !== 'honest' && behaviour !== 'crawl' && this.jobsThisConnection === (this.options.misbehaveOnJob ?? 1);
    if (misbehaveNow) return this.misbehave(ws, jobId);
    const computeMs = this.options.perImageMs * batch * (0.8 + 0.4 * (this.options.random ?? Math.random)());
    this.later(computeMs, () => {
      if (ws.readyState !== WebSocket.OPEN) return;
      this.counts.images += batch;
      const indices = Array.from({ length: batch }, () => Array.from({ length: this.topK }, (_, k) => k));
      const probabilities = Array.from({ length: batch }, () => Array.from({ length: this.topK }, (_, k) => 0.5 / (k + 1)));
      send(ws, { type: 'result', job_id: jobId, indices, probabilities, compute_ms: computeMs });
    });
  }

  private misbehave(ws: WebSocket, jobId: number): void {
    switch (this.options.behaviour) {
      case 'fail':
        this.counts.failed++;
        send(ws, { type: 'job_failed', job_id: jobId, message: 'GPU device lost (swarm)' });
        return this.leaveAndReturn(ws);
      case 'vanish':
        this.counts.swallowed++;
        ws.terminate();
        return;
      case 'silent':
        // A frozen tab: the connection stays, nothing comes from it, and what is sent to it piles up.
        this.counts.swallowed++;
        clearInterval(this.heartbeat);
        return;
      case 'half-open':
        // The network dropped without a FIN: nothing is read or written any more.
        this.counts.swallowed++;
        clearInterval(this.heartbeat);
        ws.pause();
        // Until the peer's own side notices (a new network, a reload) and starts afresh.
        if (this.options.reconnectMs !== undefined) this.later(HALF_OPEN_NOTICE_MS, () => ws.terminate());
        return;
      default:
        return;
    }
  }

  /** A failing tab re-creates its device and comes back as a new connection. */
  private leaveAndReturn(ws: WebSocket): void {
    if (this.options.reconnectMs === undefined) return;
    ws.close(1000, 'reconnecting');
  }

  private onClosed(ws: WebSocket): void {
    if (ws !== this.ws) return;
    clearInterval(this.heartbeat);
    if (this.stopped || this.options.reconnectMs === undefined) return;
    const jitter = 0.5 + (this.options.random ?? Math.random)();
    this.later(this.options.reconnectMs * jitter, () => this.start());
  }

  private later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    this.timers.add(timer);
  }
}

function send(ws: WebSocket, message: object): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function toBytes(data: WebSocket.RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
