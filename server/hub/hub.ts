/**
 * The hub's request path, whatever front a request came in by: preprocess, queue, infer,
 * reply. Every request that reaches `classify` or `refuse` gets exactly one reply, and is
 * counted by outcome.
 */
import { predsString, toPredictions } from '../../shared/labels.ts';
import type { ClassifyReply, ErrorReply, HubInfo, ModelInfo, Reply } from '../../shared/protocol/classify.ts';
import { ServiceError } from '../../shared/protocol/errors.ts';
import type { ErrorCode } from '../../shared/protocol/errors.ts';
import type { AdmittedRequest } from './admitted-request.ts';
import type { Logger } from '../../lib/log.ts';
import type { PreprocessPool } from '../preprocess/preprocess-pool.ts';
import type { ModelInput } from '../executors/executor.ts';
import { Job } from '../scheduler/job.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import { EventEmitter } from 'node:events';

export type Outcome = 'ok' | ErrorCode;

/** Which request a reply answers: the hub's id (once it has one) and the client's. */
export interface RequestIds {
  id?: string;
  requestId?: string;
}

export interface HubLimits {
  /** Requests accepted but not running yet (decoding, or queued) beyond which new ones are refused. */
  maxQueue: number;
  /** Deadline for requests that carry none; undefined: none. */
  defaultDeadlineMs?: number;
}

export interface HubEvents {
  replied: [reply: Reply, ids: RequestIds];
}

const SEED_TOP = 3;
/** Bounds of the hold on `overloaded` replies (see refusePaced). */
const OVERLOAD_PACE_MIN_MS = 5;
const OVERLOAD_PACE_MAX_MS = 100;
let nextRequestNumber = 0;

export class Hub extends EventEmitter<HubEvents> {
  readonly outcomes = new Map<Outcome, number>();
  /** Named in every reply; replaced (not mutated) once the ZeroMQ port is known, see hub-id.ts. */
  identity: HubInfo = { id: 'unnamed' };
  private inFlight = 0;
  /** Requests being decoded: accepted, not in the scheduler's queue yet. */
  private preprocessing = 0;
  private accepting = true;
  private ready = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly preprocess: PreprocessPool,
    private readonly scheduler: Scheduler,
    private readonly initialModel: ModelInfo,
    private readonly log: Logger,
    private readonly limits: HubLimits = { maxQueue: Infinity },
  ) {
    super();
  }

  /** The model requests admitted now are computed with (it changes at a model swap). */
  get model(): ModelInfo {
    return this.scheduler.model ?? this.initialModel;
  }

  get isReady(): boolean {
    return this.ready && this.accepting;
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** Accepted and waiting: being decoded or in the scheduler's queue. What --max-queue bounds. */
  get waiting(): number {
    return this.preprocessing + this.scheduler.queueDepth;
  }

  markReady(): void {
    this.ready = true;
  }

  /** Runs one admitted request to its reply. Never rejects. */
  async classify(request: AdmittedRequest, receivedAt: number): Promise<Reply> {
    const refusal = this.refusalNow();
    if (refusal) return this.refusePaced(refusal, { requestId: request.requestId });
    this.inFlight++;
    try {
      return await this.run(request, receivedAt);
    } catch (error) {
      return this.refuse(error, { requestId: request.requestId });
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  /** Most requests waiting (decoding or queued) before new ones are refused as overloaded. */
  get maxQueue(): number {
    return this.limits.maxQueue;
  }

  /**
   * Why a request arriving now would be refused whatever it holds (stopping, starting, or the
   * queue is full); undefined when it would be taken. Fronts ask before they spend anything
   * on a request (reading an upload, decoding base64), so a flood is refused cheaply.
   * `images`: a request of several images is taken whole or not at all.
   */
  refusalNow(images = 1): ServiceError | undefined {
    if (!this.accepting) return new ServiceError('shutting_down', 'the server is shutting down');
    if (!this.ready) return new ServiceError('not_ready', 'the server is still starting; retry shortly');
    if (this.waiting + images > this.limits.maxQueue) {
      // Refused at once: a client can retry elsewhere or later, instead of waiting in a queue
      // whose end it cannot see.
      return new ServiceError('overloaded', `the server is at capacity (${this.limits.maxQueue} requests waiting); retry shortly`);
    }
    return undefined;
  }

  /**
   * `refuse`, but an `overloaded` refusal is held back for about the time one request takes
   * (within OVERLOAD_PACE_MIN_MS..OVERLOAD_PACE_MAX_MS). A client that resends the moment it
   * is refused, as many do, then asks about as often as a place can have come free, instead of
   * as fast as the hub can say no: a storm of such clients costs the hub a fraction of the CPU
   * its workers need (measured: admitted throughput under 64 such clients 95 → 165 in 6 s).
   */
  async refusePaced(error: unknown, ids: RequestIds = {}): Promise<ErrorReply> {
    if (error instanceof ServiceError && error.code === 'overloaded') await new Promise((resolve) => setTimeout(resolve, this.overloadPaceMs()));
    return this.refuse(error, ids);
  }

  /** The expected service time of the fastest executor that can take work, within bounds. */
  private overloadPaceMs(): number {
    let fastest = Infinity;
    for (const executor of this.scheduler.listExecutors()) if (executor.available) fastest = Math.min(fastest, executor.expectedServiceMs(1));
    return Number.isFinite(fastest) ? Math.min(OVERLOAD_PACE_MAX_MS, Math.max(OVERLOAD_PACE_MIN_MS, fastest)) : OVERLOAD_PACE_MAX_MS;
  }

  /** The reply for a request that cannot be run; counted like any other outcome. */
  refuse(error: unknown, ids: RequestIds = {}): ErrorReply {
    const { requestId } = ids;
    const serviceError =
      error instanceof ServiceError ? error : new ServiceError('internal', `internal error: ${error instanceof Error ? error.message : String(error)}`);
    if (serviceError.code === 'internal') this.log.error({ err: error, id: ids.id, request_id: requestId }, 'request failed');
    else this.log.debug({ id: ids.id, request_id: requestId, code: serviceError.code }, 'refused');
    this.count(serviceError.code);
    const reply: ErrorReply = { error: { code: serviceError.code, message: serviceError.message }, hub: this.identity };
    if (requestId !== undefined) reply.request_id = requestId;
    this.emit('replied', reply, ids);
    return reply;
  }

  /** Stops taking requests; resolves true once every accepted one is answered, false after `graceMs`. */
  async drain(graceMs: number): Promise<boolean> {
    this.accepting = false;
    if (this.inFlight === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)));
    const drained = await Promise.race([idle, timeout]);
    clearTimeout(timer);
    return drained;
  }

  private async run(request: AdmittedRequest, receivedAt: number): Promise<Reply> {
    // The hub's own id: clients' request ids are theirs to choose, and need not be unique.
    const id = `r${++nextRequestNumber}`;
    const deadlineMs = request.deadlineMs ?? this.limits.defaultDeadlineMs;
    const deadlineAt = deadlineMs === undefined ? undefined : receivedAt + deadlineMs;
    if (request.tensor) return this.runPreprocessed(request, receivedAt, id, deadlineAt, { input: request.tensor, ms: 0 });
    const image = await this.preprocessCounted(request.image);
    try {
      return await this.runPreprocessed(request, receivedAt, id, deadlineAt, { input: image.rgb, ms: image.ms });
    } finally {
      image.release();
    }
  }

  private async runPreprocessed(
    request: AdmittedRequest,
    receivedAt: number,
    id: string,
    deadlineAt: number | undefined,
    image: { input: ModelInput; ms: number },
  ): Promise<Reply> {
    if (deadlineAt !== undefined && performance.now() >= deadlineAt) {
      return this.refuse(new ServiceError('timeout', 'the request passed its deadline before it was queued'), { id, requestId: request.requestId });
    }
    const job = new Job({ id, requestId: request.requestId, image: image.input, offload: request.offload, deadlineAt, allClasses: request.onAllClasses !== undefined });
    this.scheduler.submit(job);
    const outcome = await job.outcome();
    if (!outcome.ok) return this.refuse(outcome.error, { id, requestId: request.requestId });
    if (request.onAllClasses) {
      if (!outcome.allClasses) return this.refuse(new ServiceError('internal', 'the executor did not return every class’s probability'), { id, requestId: request.requestId });
      request.onAllClasses(outcome.allClasses);
    }
    const ranked = toPredictions(outcome.result);
    const predictions = ranked.slice(0, request.top);
    const reply: ClassifyReply = {
      // The seed's string always holds the top 3, whatever `top` asks for in `predictions`.
      preds: predsString(ranked.slice(0, SEED_TOP)),
      predictions,
      executor: outcome.executor,
      // The weights that computed this answer: across a swap, not always those admitted now.
      model: outcome.model ?? this.model,
      timing: {
        queue_ms: round2(outcome.queueMs),
        preprocess_ms: round2(image.ms),
        inference_ms: round2(outcome.inferenceMs),
        total_ms: round2(performance.now() - receivedAt),
      },
      hub: this.identity,
    };
    if (request.requestId !== undefined) reply.request_id = request.requestId;
    this.count('ok');
    this.emit('replied', reply, { id, requestId: request.requestId });
    this.log.debug({ id, request_id: request.requestId, executor: outcome.executor.id, total_ms: reply.timing.total_ms }, 'classified');
    return reply;
  }

  /** Decodes the image, counted as waiting meanwhile (admission control sees it). */
  private async preprocessCounted(bytes: AdmittedRequest['image']): ReturnType<PreprocessPool['preprocess']> {
    this.preprocessing++;
    try {
      return await this.preprocess.preprocess(bytes);
    } finally {
      this.preprocessing--;
    }
  }

  private count(outcome: Outcome): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
