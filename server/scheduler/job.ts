/**
 * One image waiting for (or undergoing) inference, and the promise that it is settled
 * exactly once: by a result, an error, or its deadline, whichever comes first.
 */
import type { TopK } from '../../shared/labels.ts';
import type { ExecutorInfo, ModelInfo } from '../../shared/protocol/classify.ts';
import { ServiceError } from '../../shared/protocol/errors.ts';
import type { ModelInput } from '../executors/executor.ts';

export interface JobSuccess {
  ok: true;
  result: TopK;
  executor: ExecutorInfo;
  /** The model the result was computed with. */
  model?: ModelInfo;
  queueMs: number;
  inferenceMs: number;
  /** Every class's probability, when the job asked for them (`allClasses`). */
  allClasses?: Float32Array;
}

export interface JobFailure {
  ok: false;
  error: ServiceError;
  executor?: ExecutorInfo;
}

export type JobOutcome = JobSuccess | JobFailure;

export interface JobOptions {
  id: string;
  /** The client's own id for the request, if it gave one (not unique: clients choose it). */
  requestId?: string;
  /** Preprocessed 224×224×3 RGB image, or the model's float input as a client sent it (local workers only). */
  image: ModelInput;
  /** May this job run outside the hub (on a volunteer)? */
  offload: boolean;
  /** Absolute time (performance.now()) after which the answer is useless. */
  deadlineAt?: number;
  /** A client's request, or the hub's own re-run of one to check a volunteer. */
  purpose?: 'request' | 'verification';
  /** The model it must be computed with; the scheduler's current one when not given. */
  model?: ModelInfo;
  /** Keeps `model` even when the hub moves to another one before it runs (a check of an answer from that model). */
  pinned?: boolean;
  /** The answer must carry every class's probability: only executors that return them may run it. */
  allClasses?: boolean;
}

let nextJobNumber = 0;

export class Job {
  readonly id: string;
  readonly requestId: string | undefined;
  readonly image: ModelInput;
  readonly offload: boolean;
  readonly deadlineAt: number | undefined;
  readonly purpose: 'request' | 'verification';
  /**
   * The weights it must be computed with: only an executor serving these may run it, and the
   * reply names them. Set when it is submitted; moved to the new model at a swap while it has
   * not started (unless pinned), so no answer of the old model reaches a job of the new.
   */
  model: ModelInfo | undefined;
  readonly pinned: boolean;
  readonly allClasses: boolean;
  readonly enqueuedAt = performance.now();
  startedAt: number | undefined;
  attempts = 0;
  /** Tries that failed on volunteers (a vanished or failing tab). */
  volunteerFailures = 0;
  /** Executors running this job now: more than one while a hedge is under way. */
  readonly runningOn = new Set<object>();
  private settledOutcome: JobOutcome | undefined;
  private readonly done: Promise<JobOutcome>;
  private resolveDone!: (outcome: JobOutcome) => void;
  private deadlineTimer: NodeJS.Timeout | undefined;

  constructor(options: JobOptions) {
    this.id = options.id || `job-${++nextJobNumber}`;
    this.requestId = options.requestId;
    this.image = options.image;
    this.offload = options.offload;
    this.deadlineAt = options.deadlineAt;
    this.purpose = options.purpose ?? 'request';
    this.model = options.model;
    this.pinned = options.pinned ?? false;
    this.allClasses = options.allClasses ?? false;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    if (this.deadlineAt !== undefined) {
      const delay = Math.max(0, this.deadlineAt - performance.now());
      this.deadlineTimer = setTimeout(() => {
        this.settle({ ok: false, error: new ServiceError('timeout', 'the request passed its deadline') });
      }, delay);
      this.deadlineTimer.unref();
    }
  }

  get settled(): boolean {
    return this.settledOutcome !== undefined;
  }

  get expired(): boolean {
    return this.deadlineAt !== undefined && performance.now() >= this.deadlineAt;
  }

  /** Settles the job; returns false (and changes nothing) when it was settled before. */
  settle(outcome: JobOutcome): boolean {
    if (this.settledOutcome) return false;
    this.settledOutcome = outcome;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.resolveDone(outcome);
    return true;
  }

  outcome(): Promise<JobOutcome> {
    return this.done;
  }
}
