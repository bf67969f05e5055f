/**
 * The volunteer tab's side of the protocol (shared/protocol/volunteer.ts), on the page's main
 * thread: the WebSocket, heartbeats, reconnection, and handing jobs to the model worker.
 *
 *   connect → welcome → (model from IndexedDB, or downloaded and hash-checked) → warm-up →
 *   hello → jobs (binary frames) → result / job_failed … → until Stop, quarantine or refusal.
 *
 * Every hub message is validated with the shared zod schemas; malformed ones are reported and
 * ignored. Every message sent is validated too, so a bug here cannot put garbage on the wire.
 */
import { MAX_VOLUNTEER_BATCH, VOLUNTEER_PROTOCOL_VERSION, peekJobId } from '../../../shared/protocol/volunteer.ts';
import type { JobFrame, VolunteerMessage } from '../../../shared/protocol/volunteer.ts';
import { backoffDelay } from '../../../shared/backoff.ts';
import { HubLink, RECONNECT_BACKOFF } from './hub-link.ts';
import { parseHubText, welcomeModelUrl } from './hub-messages.ts';
import type { Welcome } from './hub-messages.ts';
import { JobQueue, readJobFrame } from './job-queue.ts';
import { spawnModelWorker } from './spawn-model-worker.ts';
import { Ticker } from './ticker.ts';
import { initialVolunteerState, jobDonePatch, modelReadyPatch, progressPatch, reconnectDetail } from './volunteer-state.ts';
import type { Phase, VolunteerState } from './volunteer-state.ts';
import type { FaultMode, FromWorker, ToWorker, VolunteerBackend } from './worker-messages.ts';

export interface SessionOptions {
  /** ws(s)://host/ws/volunteer[?token=…] */
  url: string;
  /** Base for the model URL the hub gives (the page's URL). */
  baseUrl: string;
  fault: FaultMode;
  /** Force one backend (?backend=wasm), for tests and troubleshooting. */
  backend: VolunteerBackend | null;
  /**
   * The most images this tab takes per job (?max_batch=1), below the hub's limit. 1 also skips
   * compiling the batch shaders: a quicker start and less GPU memory. Null: the hub's limit.
   */
  maxBatch: number | null;
}

const CONNECT_TIMEOUT_MS = 15_000;
const TICK_MS = 250;

export class VolunteerSession {
  readonly state: VolunteerState;
  private readonly listeners = new Set<(state: VolunteerState) => void>();

  private running = false;
  private readonly link = new HubLink();
  private welcome: Welcome | null = null;
  private helloSent = false;
  private connectDeadline = 0;
  private nextHeartbeat = 0;
  private attempt = 0;

  private worker: Worker | null = null;
  private ticker: Ticker | null = null;
  private readonly jobs = new JobQueue();

  constructor(private readonly options: SessionOptions) {
    this.state = initialVolunteerState(options.fault);
  }

  get isRunning(): boolean {
    return this.running;
  }

  subscribe(listener: (state: VolunteerState) => void): void {
    this.listeners.add(listener);
    listener(this.state);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.state.lastError = null;
    this.startWorker();
    this.ticker = new Ticker(TICK_MS, () => this.tick());
    this.connect();
  }

  /** The volunteer pressed Stop: say bye, close, and free the GPU (the worker goes away). */
  stop(): void {
    if (!this.running) return;
    this.send({ type: 'bye' });
    this.shutDown('stopped', 'Stopped — this tab is not using your GPU', null);
  }

  /** The tab is going away: tell the hub, without waiting for anything. */
  sayBye(): void {
    this.send({ type: 'bye' });
  }

  // -------------------------------------------------------------------------------------------
  // Connection

  private connect(): void {
    // welcome and helloSent are already clear: a session starts with none, and dropConnection clears them.
    this.update({ state: 'connecting', detail: 'Connecting to the hub…', reconnectAt: null, currentJobId: null });
    this.connectDeadline = Date.now() + CONNECT_TIMEOUT_MS;
    try {
      this.link.open(this.options.url, {
        onText: (text) => this.onText(text),
        onBinary: (buffer) => this.onBinary(buffer),
        onClosed: (code, reason) => {
          const why = reason ? `: ${reason}` : '';
          this.lost(this.welcome ? `the connection to the hub closed (code ${code}${why})` : `cannot reach the hub (code ${code}${why})`);
        },
      });
    } catch (error) {
      this.lost(`cannot open ${this.options.url}: ${messageOf(error)}`);
    }
  }

  /** The connection is gone (closed, timed out, or the hub is stopping): reconnect later. */
  private lost(reason: string, minAttempt = 0): void {
    this.dropConnection(1000, 'reconnecting');
    if (!this.running) return;
    this.state.lastError = reason;
    this.attempt = Math.max(this.attempt, minAttempt);
    // attempt counts from 0: the first reconnection is retry 1.
    const delay = backoffDelay(++this.attempt, RECONNECT_BACKOFF);
    this.update({ state: 'reconnecting', reconnectAt: Date.now() + delay, detail: reconnectDetail(delay), currentJobId: null });
  }

  private dropConnection(code: number, reason: string): void {
    this.link.close(code, reason);
    this.welcome = null;
    this.helloSent = false;
    this.jobs.dropWaiting();
  }

  /** Ends the session for good (Stop, quarantine, refusal, a local failure). */
  private shutDown(phase: Phase, detail: string, error: string | null): void {
    this.running = false;
    this.dropConnection(1000, phase);
    this.ticker?.dispose();
    this.ticker = null;
    this.worker?.terminate();
    this.worker = null;
    this.jobs.reset();
    if (error !== null) this.state.lastError = error;
    this.update({ state: phase, detail, reconnectAt: null, currentJobId: null, downloadProgress: null, modelSource: null });
  }

  private tick(): void {
    const now = Date.now();
    if (this.state.state === 'reconnecting' && this.state.reconnectAt !== null) {
      if (now >= this.state.reconnectAt) {
        this.connect();
        return;
      }
      const detail = reconnectDetail(this.state.reconnectAt - now);
      if (detail !== this.state.detail) this.update({ detail });
      return;
    }
    if (!this.link.active) return;
    if (!this.welcome) {
      if (now > this.connectDeadline) this.lost(`no welcome from the hub within ${CONNECT_TIMEOUT_MS / 1000} s`);
      return;
    }
    const heartbeatMs = heartbeatOf(this.welcome);
    const silentMs = now - this.link.lastReceived;
    if (silentMs > 3 * heartbeatMs) {
      this.lost(`nothing from the hub for ${(silentMs / 1000).toFixed(1)} s; the connection is dead`);
      return;
    }
    if (now >= this.nextHeartbeat) {
      this.nextHeartbeat = now + heartbeatMs;
      this.send({ type: 'heartbeat', sent_at: now });
    }
  }

  private send(message: VolunteerMessage): void {
    this.link.send(message);
  }

  private complain(message: string): void {
    console.warn(`volunteer: ${message}`);
    this.update({ lastError: message });
  }

  // -------------------------------------------------------------------------------------------
  // Hub → tab

  private onText(text: string): void {
    const parsed = parseHubText(text);
    if ('problem' in parsed) {
      this.complain(parsed.problem);
      return;
    }
    const { message } = parsed;
    switch (message.type) {
      case 'welcome':
        this.onWelcome(message);
        break;
      case 'heartbeat':
        break; // lastReceived is all it is for
      case 'stop':
        // The hub is shutting down or restarting: come back later.
        this.lost(`the hub is stopping (${message.reason})`, 2);
        break;
      case 'model':
        // New weights on the hub: rejoin straight away; the welcome names them, and the model is
        // fetched (or found in the cache) and checked against their hash before any new job.
        this.attempt = 0;
        this.lost(`the hub changed its model to ${message.model.sha256.slice(0, 12)}…; loading it`);
        break;
      case 'quarantined':
        this.shutDown('quarantined', 'Quarantined by the hub', message.reason);
        break;
      case 'refused':
        this.shutDown('refused', 'Refused by the hub', message.reason);
        break;
    }
  }

  private onWelcome(welcome: Welcome): void {
    if (this.welcome) {
      this.complain('the hub sent a second welcome; ignored');
      return;
    }
    const model = welcomeModelUrl(welcome, this.options.baseUrl);
    if ('problem' in model) {
      this.shutDown('error', 'Stopped: the hub named its model badly', model.problem);
      return;
    }
    this.welcome = welcome;
    this.attempt = 0;
    const now = Date.now();
    this.link.lastReceived = now;
    this.nextHeartbeat = now + heartbeatOf(welcome);
    this.update({
      volunteerId: welcome.volunteer_id,
      connections: this.state.connections + 1,
      modelSha256: welcome.model.sha256,
      state: 'loading',
      detail: 'Preparing the model…',
    });
    this.toWorker({ type: 'load', url: model.url, sha256: welcome.model.sha256, maxBatch: this.batchLimit(welcome) });
  }

  private onBinary(buffer: ArrayBuffer): void {
    const bytes = new Uint8Array(buffer);
    let job: JobFrame;
    try {
      job = readJobFrame(bytes);
    } catch (error) {
      const jobId = peekJobId(bytes);
      if (jobId !== null && this.helloSent) this.send({ type: 'job_failed', job_id: jobId, message: messageOf(error).slice(0, 1000) });
      this.complain(`the hub sent a bad job frame: ${messageOf(error)}`);
      return;
    }
    if (!this.helloSent) {
      this.complain(`the hub sent job ${job.jobId} before this tab said hello; refused`);
      this.send({ type: 'job_failed', job_id: job.jobId, message: 'not ready: no hello sent yet' });
      return;
    }
    this.jobs.push(job);
    this.pump();
  }

  /** The most images per job: the hub's limit, this page's ?max_batch and the protocol's. */
  private batchLimit(welcome: Welcome): number {
    return Math.max(1, Math.min(welcome.max_batch, this.options.maxBatch ?? MAX_VOLUNTEER_BATCH, MAX_VOLUNTEER_BATCH));
  }

  private sendHello(maxBatch: number): void {
    const welcome = this.welcome;
    const backend = this.state.backend;
    if (!welcome || !backend || this.helloSent) return;
    const estimate = this.state.averagePerImageMs ?? this.state.warmupPerImageMs ?? 1;
    const offered = Math.max(1, Math.min(maxBatch, this.batchLimit(welcome)));
    this.send({
      type: 'hello',
      protocol: VOLUNTEER_PROTOCOL_VERSION,
      backend,
      adapter: this.state.adapter ?? undefined,
      user_agent: navigator.userAgent.slice(0, 500),
      model_sha256: welcome.model.sha256,
      per_image_ms: Math.min(600_000, Math.max(0.001, estimate)),
      max_batch: offered,
    });
    this.helloSent = true;
    this.update({ maxBatch: offered, state: 'ready', detail: 'Ready — waiting for work', downloadProgress: null });
    this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // The model worker

  private startWorker(): void {
    const worker = spawnModelWorker({
      onMessage: (message) => {
        if (worker === this.worker) this.onWorker(message);
      },
      onFailed: (message) => {
        if (worker === this.worker) this.shutDown('error', 'Stopped after an error', message);
      },
    });
    this.worker = worker;
    this.toWorker({ type: 'init', fault: this.options.fault, backend: this.options.backend });
  }

  private toWorker(message: ToWorker, transfer: Transferable[] = []): void {
    this.worker?.postMessage(message, transfer);
  }

  private onWorker(message: FromWorker): void {
    switch (message.type) {
      case 'backend':
        if (message.notes.length > 0) console.info(`volunteer: using ${message.backend}; ${message.notes.join('; ')}`);
        this.update({ backend: message.backend, adapter: message.adapter, backendNotes: message.notes });
        break;
      case 'init-failed':
        this.shutDown('error', 'Stopped: this browser cannot run the model', [message.message, ...message.notes].join('; '));
        break;
      case 'progress':
        if (this.welcome) this.update(progressPatch(message));
        break;
      case 'model-ready':
        if (!this.welcome || this.welcome.model.sha256 !== message.sha256) break;
        this.update(modelReadyPatch(this.state, message));
        this.sendHello(message.maxBatch);
        break;
      case 'model-failed':
        if (!this.welcome || this.welcome.model.sha256 !== message.sha256) break;
        if (message.integrity) {
          this.shutDown('error', 'Stopped: the model failed its integrity check', message.message);
        } else {
          this.lost(`cannot get the model: ${message.message}`);
        }
        break;
      case 'result':
      case 'run-failed':
        this.onJobDone(message);
        break;
      case 'warn':
        console.warn(`volunteer (model worker): ${message.message}`);
        break;
    }
  }

  private pump(): void {
    if (!this.helloSent || !this.worker) return;
    const next = this.jobs.start(this.link.epoch);
    if (!next) return;
    const { run, job } = next;
    const pixels = job.pixels.slice().buffer; // exactly the images, transferred to the worker
    this.toWorker({ type: 'run', seq: run.seq, jobId: job.jobId, batch: job.batch, pixels, topK: this.welcome!.top_k }, [pixels]);
    this.update({
      state: 'computing',
      currentJobId: job.jobId,
      detail: `Computing job ${job.jobId} (${job.batch} image${job.batch === 1 ? '' : 's'})`,
    });
  }

  private onJobDone(message: Extract<FromWorker, { type: 'result' | 'run-failed' }>): void {
    const busy = this.jobs.finish(message.seq);
    if (!busy) return;
    const current = busy.epoch === this.link.epoch && this.helloSent;
    if (current) {
      if (message.type === 'result') {
        this.send({
          type: 'result',
          job_id: message.jobId,
          indices: message.indices,
          probabilities: message.probabilities,
          compute_ms: Math.min(3_600_000, Math.max(0, message.computeMs)),
        });
        this.update(jobDonePatch(this.state, busy.batch, message.computeMs));
      } else {
        this.send({ type: 'job_failed', job_id: message.jobId, message: message.message.slice(0, 1000) });
        this.update({ jobsFailed: this.state.jobsFailed + 1, lastError: `job ${message.jobId} failed: ${message.message}` });
      }
    }
    // A result for a connection that has since died is dropped: its job is the hub's to redo.
    if (this.state.state === 'computing') this.update({ state: 'ready', detail: 'Ready — waiting for work', currentJobId: null });
    this.pump();
  }

  private update(patch: Partial<VolunteerState>): void {
    Object.assign(this.state, patch);
    for (const listener of this.listeners) listener(this.state);
  }
}

/** The hub's heartbeat period, no shorter than the tick that checks it. */
function heartbeatOf(welcome: Welcome): number {
  return Math.max(TICK_MS, welcome.heartbeat_ms);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
