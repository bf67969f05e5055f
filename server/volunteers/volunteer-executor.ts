/**
 * One connected, warmed-up volunteer browser tab as an Executor: a batch goes out as one binary
 * job frame and comes back as one `result` message. The tab is far away and untrusted, so a
 * batch ends exactly once whichever way it ends (answer, failure, malformed answer, timeout,
 * quarantine, disconnect), and only the tab's own in-flight job id can end it.
 */
import { INPUT_SIZE } from '../../shared/caffe.ts';
import type { TopK } from '../../shared/labels.ts';
import { encodeJobFrame } from '../../shared/protocol/volunteer.ts';
import type { AdapterInfo, HubMessage, PauseReason, VolunteerBackend, VolunteerMessage } from '../../shared/protocol/volunteer.ts';
import type { BatchResult, Executor, ModelInput } from '../executors/executor.ts';
import { ServiceTimeEstimate } from '../executors/service-time.ts';
import { DEFAULT_FAILURE_REST_MS, DEFAULT_JOB_TIMEOUT, DEFAULT_MAX_CONSECUTIVE_FAILURES, NEWCOMER_FLOOR_MS, PROBATION_JOBS, jobTimeoutMs, restMs } from './standing-policy.ts';
import type { JobTimeout } from './standing-policy.ts';
import type { VolunteerStanding, VolunteerState } from '../../shared/protocol/status.ts';

export type VolunteerHello = Extract<VolunteerMessage, { type: 'hello' }>;
export type VolunteerResult = Extract<VolunteerMessage, { type: 'result' }>;
export type VolunteerJobFailed = Extract<VolunteerMessage, { type: 'job_failed' }>;

/** The way to the tab; the socket owns it, so this class never sees a WebSocket. */
export interface VolunteerLink {
  send(message: HubMessage): void;
  /** `onError` fires when the frame could not be handed to the connection. */
  sendJob(frame: Uint8Array, onError: (error: Error) => void): void;
}

export interface VolunteerExecutorOptions {
  id: string;
  hello: VolunteerHello;
  link: VolunteerLink;
  /** The hub's own batch limit; the tab's (from hello) applies too. */
  maxBatch: number;
  /** Length of every result row: the top_k the hub announced in `welcome`. */
  topK: number;
  /** Hub-wide, so a result naming another tab's job can never match this tab's. */
  nextJobId: () => number;
  timeout?: JobTimeout;
  /**
   * A tab whose batches fail this many times in a row is quarantined: otherwise a broken tab
   * that fails at once looks like the fastest executor and burns every job's attempts.
   */
  maxConsecutiveFailures?: number;
  /**
   * Rest after a failed batch (doubling with each failure in a row). The scheduler puts a failed
   * batch back at the front of the queue and gives it to whoever is expected to finish first,
   * which, without a rest, is the same fast-failing tab again, until the job's attempts run out.
   */
  failureRestMs?: number;
}

/** What became of a message naming a job; the socket counts the last two as violations. */
export type JobVerdict =
  | { verdict: 'accepted' }
  /** For a job this tab had but that already ended (timeout, quarantine): a slow tab, not a liar. */
  | { verdict: 'late' }
  | { verdict: 'unknown_job'; detail: string }
  | { verdict: 'bad_shape'; detail: string };

interface InFlight {
  jobId: number;
  batch: number;
  sentAt: number;
  /** The scheduler found it late and ran it elsewhere too: it earns nothing, and a rest follows. */
  late: boolean;
  timer: NodeJS.Timeout;
  resolve: (result: BatchResult) => void;
  reject: (error: Error) => void;
}

/** How many ended job ids are remembered, to tell a late answer from a made-up one. */
const REMEMBERED_JOBS = 8;

export class VolunteerExecutor implements Executor {
  readonly kind = 'volunteer';
  readonly capacity = 1;
  readonly id: string;
  readonly engine: VolunteerBackend;
  /** The batch limit once proven (the tab's and the hub's); on probation, one image. */
  readonly batchLimit: number;
  /** The model the tab said hello with (the hub checked it was the one it serves then). */
  readonly modelSha256: string;
  readonly adapter: AdapterInfo | undefined;
  readonly userAgent: string | undefined;
  state: VolunteerState = 'ready';
  quarantineReason: string | undefined;
  jobsDone = 0;
  imagesDone = 0;
  failures = 0;
  lateJobs = 0;
  hedgesWon = 0;
  hedgesLost = 0;
  handedBack = 0;
  pausedReason: PauseReason | undefined;
  /** Epoch ms of the last frame from the tab. */
  lastSeenAt = Date.now();
  private consecutiveFailures = 0;
  /** Answers in time since it last lost its standing (joined, was late, failed). */
  private earned = 0;
  /** Failures and late jobs since its last answer in time: each one doubles the next rest. */
  private strikes = 0;
  private inFlight: InFlight | undefined;
  private readonly endedJobs: number[] = [];
  /** The tab's own compute time per image: starts from its warm-up, then what it reports. */
  private readonly compute: ServiceTimeEstimate;
  /** Round trip minus compute (transfer, queueing in the tab); kept apart so it does not scale with batch size. */
  private networkMs = 0;
  private networkSamples = 0;
  private readonly link: VolunteerLink;
  private readonly topK: number;
  private readonly nextJobId: () => number;
  private readonly timeout: JobTimeout;
  private readonly maxConsecutiveFailures: number;
  private readonly failureRestMs: number;
  private restTimer: NodeJS.Timeout | undefined;
  private readonly availabilityListeners: Array<() => void> = [];
  private readonly quarantineListeners: Array<(reason: string) => void> = [];

  constructor(options: VolunteerExecutorOptions) {
    const { hello } = options;
    this.id = options.id;
    this.engine = hello.backend;
    this.modelSha256 = hello.model_sha256;
    this.adapter = hello.adapter;
    this.userAgent = hello.user_agent;
    this.batchLimit = Math.max(1, Math.min(hello.max_batch, options.maxBatch));
    this.compute = new ServiceTimeEstimate(hello.per_image_ms);
    this.link = options.link;
    this.topK = options.topK;
    this.nextJobId = options.nextJobId;
    this.timeout = options.timeout ?? DEFAULT_JOB_TIMEOUT;
    this.maxConsecutiveFailures = options.maxConsecutiveFailures ?? DEFAULT_MAX_CONSECUTIVE_FAILURES;
    this.failureRestMs = options.failureRestMs ?? DEFAULT_FAILURE_REST_MS;
  }

  /** Answered enough jobs in time on this connection that its record, not its claim, says how fast it is. */
  get proven(): boolean {
    return this.earned >= PROBATION_JOBS;
  }

  get earnedAnswers(): number {
    return this.earned;
  }

  get standing(): VolunteerStanding {
    switch (this.state) {
      case 'quarantined':
      case 'paused':
        return this.state;
      case 'resting':
        return 'backing_off';
      default:
        return this.proven ? 'trusted' : 'probation';
    }
  }

  get maxBatch(): number {
    return this.proven ? this.batchLimit : 1;
  }

  /** Busy still counts: the scheduler may plan to give it the next batch when this one ends. */
  get available(): boolean {
    return this.state === 'ready' || this.state === 'busy';
  }

  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  get inFlightJobId(): number | undefined {
    return this.inFlight?.jobId;
  }

  get perImageMs(): number {
    return this.compute.perImage;
  }

  get overheadMs(): number {
    return this.networkMs;
  }

  expectedServiceMs(batchSize: number): number {
    const computeMs = this.compute.expectedMs(batchSize);
    return this.networkMs + (this.proven ? computeMs : Math.max(computeMs, NEWCOMER_FLOOR_MS * batchSize));
  }

  onAvailabilityChange(listener: () => void): void {
    this.availabilityListeners.push(listener);
  }

  /** Called once the tab is quarantined, whoever decided it (the hub, or its own failures). */
  onQuarantined(listener: (reason: string) => void): void {
    this.quarantineListeners.push(listener);
  }

  markSeen(at = Date.now()): void {
    this.lastSeenAt = at;
  }

  run(images: readonly ModelInput[]): Promise<BatchResult> {
    if (this.state !== 'ready') return Promise.reject(new Error(`volunteer ${this.id} is ${this.state}`));
    // A tab takes RGB images only (it does not declare takesTensors); the scheduler never sends it others.
    if (images.some((image) => image instanceof Float32Array)) return Promise.reject(new TypeError(`volunteer ${this.id} takes RGB images only`));
    if (images.length < 1 || images.length > this.maxBatch) {
      return Promise.reject(new RangeError(`volunteer ${this.id} takes 1 to ${this.maxBatch} images, got ${images.length}`));
    }
    const jobId = this.nextJobId();
    let frame: Uint8Array;
    try {
      frame = encodeJobFrame(jobId, images as readonly Uint8Array[], INPUT_SIZE, INPUT_SIZE);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const timeoutMs = jobTimeoutMs(this.timeout, this.expectedServiceMs(images.length));
    return new Promise<BatchResult>((resolve, reject) => {
      const timer = setTimeout(() => this.failJob(jobId, new Error(`volunteer ${this.id} gave no answer in ${Math.round(timeoutMs)} ms`)), timeoutMs);
      // The socket, not this timer, is what keeps the process alive.
      timer.unref();
      this.inFlight = { jobId, batch: images.length, sentAt: performance.now(), late: false, timer, resolve, reject };
      this.setState('busy');
      this.link.sendJob(frame, (error) => this.failJob(jobId, new Error(`volunteer ${this.id}: could not send the job: ${error.message}`)));
    });
  }

  handleResult(message: VolunteerResult): JobVerdict {
    const inFlight = this.inFlight;
    if (inFlight?.jobId !== message.job_id) return this.notInFlight(message.job_id);
    const problem = this.shapeProblem(message, inFlight.batch);
    if (problem) {
      this.failJob(inFlight.jobId, new Error(`volunteer ${this.id} sent a malformed result: ${problem}`));
      return { verdict: 'bad_shape', detail: problem };
    }
    this.takeInFlight(inFlight.jobId);
    const roundTripMs = performance.now() - inFlight.sentAt;
    // compute_ms is the tab's word; it cannot exceed what the hub measured.
    const computeMs = Math.min(message.compute_ms, roundTripMs);
    this.compute.observe(inFlight.batch, computeMs);
    this.observeNetwork(roundTripMs - computeMs);
    this.jobsDone++;
    this.imagesDone += inFlight.batch;
    this.consecutiveFailures = 0;
    if (inFlight.late) {
      this.strikes++;
    } else {
      this.earned++;
      this.strikes = 0;
    }
    const results: TopK[] = message.indices.map((indices, i) => ({ indices, probabilities: message.probabilities[i] }));
    // The round trip, not compute_ms: it is what the hub measured and what the client waited.
    inFlight.resolve({ results, inferenceMs: roundTripMs });
    if (inFlight.late) this.rest();
    return { verdict: 'accepted' };
  }

  noteLate(): void {
    this.lateJobs++;
    this.earned = 0;
    if (this.inFlight) this.inFlight.late = true;
  }

  noteHedgeOutcome(won: boolean): void {
    if (won) this.hedgesWon++;
    else this.hedgesLost++;
  }

  /**
   * The tab cannot work for now (hidden, frozen): no more jobs until it
   * resumes, and the job in hand goes back to the scheduler at once, not counted against it.
   */
  pause(reason: PauseReason): void {
    if (this.state === 'quarantined' || this.state === 'gone') return;
    this.pausedReason = reason;
    clearTimeout(this.restTimer);
    this.setState('paused');
    const inFlight = this.inFlight && this.takeInFlight(this.inFlight.jobId);
    if (!inFlight) return;
    this.handedBack++;
    inFlight.reject(new Error(`volunteer ${this.id} paused (${reason}) and handed its job back`));
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.pausedReason = undefined;
    this.setState('ready');
  }

  handleJobFailed(message: VolunteerJobFailed): JobVerdict {
    if (this.inFlight?.jobId !== message.job_id) return this.notInFlight(message.job_id);
    this.failJob(message.job_id, new Error(`volunteer ${this.id} failed the batch: ${message.message}`));
    return { verdict: 'accepted' };
  }

  /** No more jobs; the tab is told; the batch in flight fails now so it is re-queued. */
  quarantine(reason: string): boolean {
    if (this.state === 'quarantined' || this.state === 'gone') return false;
    this.quarantineReason = reason;
    clearTimeout(this.restTimer);
    this.setState('quarantined');
    this.link.send({ type: 'quarantined', reason });
    this.abort(new Error(`volunteer ${this.id} was quarantined: ${reason}`));
    for (const listener of this.quarantineListeners) listener(reason);
    return true;
  }

  /** The tab is gone (closed, dropped for silence, refused); the batch in flight fails now. */
  disconnect(reason: string): void {
    if (this.state === 'gone') return;
    clearTimeout(this.restTimer);
    this.setState('gone');
    this.abort(new Error(`volunteer ${this.id} left: ${reason}`));
  }

  private notInFlight(jobId: number): JobVerdict {
    if (this.endedJobs.includes(jobId)) return { verdict: 'late' };
    const current = this.inFlight ? `its job in flight is ${this.inFlight.jobId}` : 'it has no job in flight';
    return { verdict: 'unknown_job', detail: `job ${jobId} is not this tab's (${current})` };
  }

  private shapeProblem(message: VolunteerResult, batch: number): string | undefined {
    if (message.indices.length !== batch || message.probabilities.length !== batch) {
      return `${message.indices.length} index rows and ${message.probabilities.length} probability rows for ${batch} images`;
    }
    for (let i = 0; i < batch; i++) {
      if (message.indices[i].length !== this.topK || message.probabilities[i].length !== this.topK) {
        return `row ${i} has ${message.indices[i].length} indices and ${message.probabilities[i].length} probabilities, expected ${this.topK}`;
      }
    }
    return undefined;
  }

  private failJob(jobId: number, error: Error): void {
    const inFlight = this.takeInFlight(jobId);
    if (!inFlight) return;
    this.failures++;
    this.consecutiveFailures++;
    this.strikes++;
    this.earned = 0;
    inFlight.reject(error);
    // Both before the scheduler hears of the failure (a microtask away), so the batch goes elsewhere.
    if (this.consecutiveFailures >= this.maxConsecutiveFailures) {
      this.quarantine(`${this.consecutiveFailures} batches in a row failed (last: ${error.message})`);
    } else {
      this.rest();
    }
  }

  private rest(): void {
    const forMs = restMs(this.failureRestMs, this.strikes);
    if (!(forMs > 0) || this.state !== 'ready') return;
    this.setState('resting');
    this.restTimer = setTimeout(() => {
      if (this.state === 'resting') this.setState('ready');
    }, forMs);
    this.restTimer.unref();
  }

  /** Fails the batch in flight for a reason of the hub's, not the tab's. */
  private abort(error: Error): void {
    const inFlight = this.inFlight && this.takeInFlight(this.inFlight.jobId);
    if (!inFlight) return;
    this.failures++;
    inFlight.reject(error);
  }

  private takeInFlight(jobId: number): InFlight | undefined {
    const inFlight = this.inFlight;
    if (inFlight?.jobId !== jobId) return undefined;
    this.inFlight = undefined;
    clearTimeout(inFlight.timer);
    this.endedJobs.push(jobId);
    if (this.endedJobs.length > REMEMBERED_JOBS) this.endedJobs.shift();
    if (this.state === 'busy') this.setState('ready');
    return inFlight;
  }

  private observeNetwork(ms: number): void {
    // Same rule as ServiceTimeEstimate: the first measurement replaces the prior of 0.
    this.networkMs = this.networkSamples === 0 ? ms : this.networkMs + 0.2 * (ms - this.networkMs);
    this.networkSamples++;
  }

  private setState(state: VolunteerState): void {
    const wasAvailable = this.available;
    this.state = state;
    if (this.available !== wasAvailable) for (const listener of this.availabilityListeners) listener();
  }
}
