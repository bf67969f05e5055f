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
import { MAX_VOLUNTEER_BATCH, peekJobId } from '../../../shared/protocol/volunteer.ts';
import type { JobFrame, PauseReason, VolunteerMessage } from '../../../shared/protocol/volunteer.ts';
import { backoffDelay } from '../../../shared/backoff.ts';
import { HubLink, RECONNECT_BACKOFF } from './hub-link.ts';
import { parseHubText, welcomeModelUrl } from './hub-messages.ts';
import type { Welcome } from './hub-messages.ts';
import { readJobFrame } from './job-queue.ts';
import type { RunningJob } from './job-queue.ts';
import { ModelWorkerHost } from './model-worker-host.ts';
import type { JobAnswer } from './model-worker-host.ts';
import { Ticker } from './ticker.ts';
import { PAUSED_DETAIL, READY_DETAIL, initialVolunteerState, jobDonePatch, modelReadyPatch, progressPatch, reconnectDetail } from './volunteer-state.ts';
import type { Phase, VolunteerState } from './volunteer-state.ts';
import type { FaultMode, FromWorker, VolunteerBackend } from './worker-messages.ts';

export interface SessionOptions {
  /** ws(s)://host/ws/volunteer?protocol=2[&token=…] */
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
  private lastTickAt = 0;
  private attempt = 0;

  private ticker: Ticker | null = null;
  private readonly model = new ModelWorkerHost({
    onMessage: (message) => this.onWorker(message),
    onAnswer: (run, message) => this.onJobDone(run, message),
    onFailed: (message) => this.shutDown('error', 'Stopped after an error', message),
  });
  /** Why the page cannot work now (hidden, frozen); it pauses only on a hub that speaks protocol 2. */
  private readonly pausedFor = new Set<PauseReason>();

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

  /**
   * The page is hidden, or about to be frozen: the hub is told, takes back the job in hand and
   * sends no more until resume(). (A hub of protocol 1 cannot be told; the tab works on.)
   */
  pause(reason: PauseReason): void {
    if (this.pausedFor.has(reason)) return;
    this.pausedFor.add(reason);
    if (!this.canPause()) return;
    this.model.dropWaiting();
    this.send({ type: 'pause', reason });
    this.update({ state: 'paused', detail: PAUSED_DETAIL[reason], currentJobId: null });
  }

  resume(reason: PauseReason): void {
    if (!this.pausedFor.delete(reason) || this.pausedFor.size > 0) return;
    // A frozen page ran no timers: what it missed from the hub meanwhile is not the hub's silence.
    this.link.lastReceived = Date.now();
    this.nextHeartbeat = 0;
    if (!this.canPause()) return;
    this.send({ type: 'resume' });
    this.update({ state: 'ready', detail: READY_DETAIL });
    this.pump();
  }

  private canPause(): boolean {
    return this.helloSent && this.welcome !== null && this.welcome.protocol >= 2;
  }

  private get paused(): boolean {
    return this.pausedFor.size > 0 && this.canPause();
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
    this.model.dropWaiting();
  }

  /** Ends the session for good (Stop, quarantine, refusal, a local failure). */
  private shutDown(phase: Phase, detail: string, error: string | null): void {
    this.running = false;
    this.dropConnection(1000, phase);
    this.ticker?.dispose();
    this.ticker = null;
    this.model.stop();
    if (error !== null) this.state.lastError = error;
    this.update({ state: phase, detail, reconnectAt: null, currentJobId: null, downloadProgress: null, modelSource: null });
  }

  private tick(): void {
    const now = Date.now();
    // A gap in this page's own ticks means it was not running (frozen, a sleeping laptop): the
    // hub's silence meanwhile is not news. Its silence from now on is.
    if (now - this.lastTickAt > 4 * TICK_MS) this.link.lastReceived = now;
    this.lastTickAt = now;
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
    this.model.load(model.url, welcome.model.sha256, this.batchLimit(welcome));
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
    // Sent before the hub read this tab's pause: the hub has taken it back already.
    if (this.paused) return;
    this.model.enqueue(job);
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
      protocol: welcome.protocol,
      backend,
      adapter: this.state.adapter ?? undefined,
      user_agent: navigator.userAgent.slice(0, 500),
      model_sha256: welcome.model.sha256,
      per_image_ms: Math.min(600_000, Math.max(0.001, estimate)),
      max_batch: offered,
    });
    this.helloSent = true;
    this.update({ maxBatch: offered, state: 'ready', detail: READY_DETAIL, downloadProgress: null });
    // Hidden or frozen while it joined: the hub hears so at once.
    const [reason] = this.pausedFor;
    if (reason && this.canPause()) {
      this.send({ type: 'pause', reason });
      this.update({ state: 'paused', detail: PAUSED_DETAIL[reason] });
    }
    this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // The model worker

  /** A new model worker; the test hook that loses a device does so once per page, not again in the worker that follows. */
  private startWorker(): void {
    const fault = this.options.fault === 'lose-device' && this.state.deviceLosses > 0 ? null : this.options.fault;
    this.model.start(fault, this.options.backend);
  }

  private onWorker(message: Exclude<FromWorker, JobAnswer>): void {
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
      case 'warn':
        console.warn(`volunteer (model worker): ${message.message}`);
        break;
      case 'device-lost':
        this.onDeviceLost(message.message);
        break;
    }
  }

  /**
   * The GPU device is gone, and with it everything the worker had on it: the job in hand fails
   * now (the hub runs it elsewhere), and a new worker makes a new device and rejoins the hub.
   */
  private onDeviceLost(message: string): void {
    const running = this.model.stop();
    if (running && running.epoch === this.link.epoch && this.helloSent) {
      this.send({ type: 'job_failed', job_id: running.jobId, message: `the GPU device was lost: ${message}`.slice(0, 1000) });
    }
    console.info(`volunteer: the GPU device was lost (${message}); starting again`);
    this.update({ deviceLosses: this.state.deviceLosses + 1, jobsFailed: this.state.jobsFailed + (running ? 1 : 0) });
    this.startWorker();
    this.attempt = 0;
    this.lost(`the GPU device was lost (${message}); rejoining with a new one`);
  }

  private pump(): void {
    if (!this.helloSent || !this.welcome || this.paused) return;
    const next = this.model.runNext(this.link.epoch, this.welcome.top_k);
    if (!next) return;
    const { job } = next;
    this.update({
      state: 'computing',
      currentJobId: job.jobId,
      detail: `Computing job ${job.jobId} (${job.batch} image${job.batch === 1 ? '' : 's'})`,
    });
  }

  private onJobDone(busy: RunningJob, message: JobAnswer): void {
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
    if (this.state.state === 'computing') this.update({ state: 'ready', detail: READY_DETAIL, currentJobId: null });
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
