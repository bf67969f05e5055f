/**
 * One queue in arrival order, and the decision of which executor runs what: the head of the
 * queue goes to the executor expected to finish it first, together with whatever else is
 * waiting, up to that executor's batch size. A failed batch goes back to the front of the
 * queue; a batch running well past its expected time is hedged onto an idle executor; a
 * volunteer's answers pass a reviewer (spot-check verification). A job is settled exactly
 * once, whatever happens: the first answer wins.
 */
import { EventEmitter } from 'node:events';
import type { ModelInfo } from '../../shared/protocol/classify.ts';
import { ServiceError } from '../../shared/protocol/errors.ts';
import { describeExecutor } from '../executors/executor.ts';
import type { Executor } from '../executors/executor.ts';
import type { Job, JobSuccess } from './job.ts';
import { VOLUNTEER_TRIES, type OffloadMode } from './dispatch-policy.ts';
import type { ResultReviewer, SchedulerEvents, SchedulerOptions } from './scheduler-options.ts';

export type { ResultReviewer, SchedulerEvents, SchedulerOptions } from './scheduler-options.ts';

interface InFlight {
  jobs: Job[];
  startedAt: number;
  expectedEndAt: number;
  hedgeTimer?: NodeJS.Timeout;
}

export class Scheduler extends EventEmitter<SchedulerEvents> {
  private readonly queue: Job[] = [];
  private readonly executors = new Map<Executor, InFlight[]>();
  /** Batches past their hedge time still waiting for a free proven executor, with the executor running them. */
  private readonly lateBatches = new Map<InFlight, Executor>();
  /** Removed executors whose running batches have not finished yet. */
  private readonly retiring = new Set<Executor>();
  private readonly maxAttempts: number;
  private readonly batchWaitMs: number;
  private readonly offload: OffloadMode;
  private readonly hedgeAfter: ((expectedMs: number, executor: Executor) => number) | undefined;
  private reviewer: ResultReviewer | undefined;
  private batchTimer: NodeJS.Timeout | undefined;
  private pumping = false;
  private closedWith: ServiceError | undefined;
  /** The model new jobs are computed with; moved at a swap. */
  private current: ModelInfo | undefined;

  constructor(options: SchedulerOptions = {}) {
    super();
    this.maxAttempts = options.maxAttempts ?? 3;
    this.batchWaitMs = options.batchWaitMs ?? 0;
    this.offload = options.offload ?? 'auto';
    this.hedgeAfter = options.hedgeAfter;
  }

  /** The model jobs submitted from now on are computed with. */
  get model(): ModelInfo | undefined {
    return this.current;
  }

  /**
   * From this instant new jobs, and every waiting job not pinned to its model, are computed
   * with `model`: only executors serving it take them. Jobs already running finish on the
   * executor they are on, with the model they started with.
   */
  switchModel(model: ModelInfo): void {
    this.current = model;
    for (const job of this.queue) if (!job.pinned) job.model = model;
    this.pump();
  }

  /** Jobs waiting or running that must be computed with this model (what its executors still hold). */
  jobsFor(modelSha256: string): number {
    let count = this.queue.filter((job) => !job.settled && job.model?.sha256 === modelSha256).length;
    for (const batches of this.executors.values()) for (const batch of batches) count += batch.jobs.filter((job) => !job.settled && job.model?.sha256 === modelSha256).length;
    return count;
  }

  /** Settles the waiting jobs pinned to a model no executor serves any more. */
  failPinned(modelSha256: string, error: ServiceError): void {
    for (const job of [...this.queue]) if (job.pinned && job.model?.sha256 === modelSha256) job.settle({ ok: false, error });
  }

  /** Every answer from a volunteer goes through `reviewer` before it settles its job. */
  setResultReviewer(reviewer: ResultReviewer): void {
    this.reviewer = reviewer;
  }

  get queueDepth(): number {
    return this.queue.length;
  }

  get runningJobs(): number {
    let count = 0;
    for (const batches of this.executors.values()) for (const batch of batches) count += batch.jobs.length;
    return count;
  }

  listExecutors(): Executor[] {
    return [...this.executors.keys()];
  }

  addExecutor(executor: Executor): void {
    if (this.executors.has(executor)) return;
    this.executors.set(executor, []);
    executor.onAvailabilityChange(() => this.pump());
    this.pump();
  }

  /** Stops giving it work; batches it is running still settle (or fail and are re-queued). */
  removeExecutor(executor: Executor): void {
    if (this.executors.get(executor)?.length === 0) this.executors.delete(executor);
    else this.retiring.add(executor);
  }

  /** Queues a job behind those waiting; `urgent` puts it in front (verification re-runs). */
  submit(job: Job, urgent = false): void {
    if (this.closedWith) {
      job.settle({ ok: false, error: this.closedWith });
      return;
    }
    job.model ??= this.current;
    void job.outcome().then((outcome) => {
      // A job that timed out while waiting leaves the queue now, not when it reaches the head:
      // the queue's depth is what admission control bounds.
      const waitingAt = this.queue.indexOf(job);
      if (waitingAt !== -1) this.queue.splice(waitingAt, 1);
      this.emit('settled', job, outcome);
    });
    if (urgent) this.queue.unshift(job);
    else this.queue.push(job);
    this.emit('queued', job);
    this.pump();
  }

  /**
   * Stops for good: every job waiting or running is settled with `error` now, and any job
   * submitted later at once (late results of running batches are dropped by the job).
   */
  close(error: ServiceError): void {
    this.closedWith = error;
    clearTimeout(this.batchTimer);
    this.lateBatches.clear();
    for (const job of this.queue.splice(0)) job.settle({ ok: false, error });
    for (const batches of this.executors.values()) {
      for (const batch of batches) {
        clearTimeout(batch.hedgeTimer);
        for (const job of batch.jobs) job.settle({ ok: false, error });
      }
    }
  }

  private pump(): void {
    // Executors call back synchronously from inside dispatch; one pass at a time is enough.
    if (this.pumping) return;
    this.pumping = true;
    try {
      // A late batch's hedge goes before new work: its jobs have waited longest.
      if (this.lateBatches.size > 0) this.startHedges();
      while (this.queue.length > 0) {
        this.dropSettledHead();
        const executor = this.nextToStart();
        if (!executor) break;
        this.dispatch(executor, this.takeBatch(executor));
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * The executor to start next: for the first waiting job of each model, in queue order, the
   * one expected to finish it first, if that one is free. Jobs of one model keep their order;
   * during a swap, jobs of one model waiting for its busy workers do not hold up the other's.
   */
  private nextToStart(): Executor | undefined {
    const blocked = new Set<string | undefined>();
    for (const job of this.queue) {
      const model = job.model?.sha256;
      if (job.settled || blocked.has(model)) continue;
      const best = this.earliestFinisher(job);
      if (best && this.hasFreeSlot(best)) return this.holdForFullerBatch(best, job) ? undefined : best;
      blocked.add(model);
    }
    return undefined;
  }

  /** True (and a timer set) when the batch for `executor` should wait a little for more jobs. */
  private holdForFullerBatch(executor: Executor, head: Job): boolean {
    if (this.batchWaitMs <= 0 || executor.maxBatch <= 1 || this.queue.length >= executor.maxBatch) return false;
    const releaseAt = head.enqueuedAt + this.batchWaitMs;
    const wait = releaseAt - performance.now();
    if (wait <= 0) return false;
    if (!this.batchTimer) {
      this.batchTimer = setTimeout(() => {
        this.batchTimer = undefined;
        this.pump();
      }, wait);
    }
    return true;
  }

  /** Jobs settled while waiting (deadline passed) leave the queue without being computed. */
  private dropSettledHead(): void {
    while (this.queue.length > 0 && (this.queue[0].settled || this.queue[0].expired)) {
      this.queue.shift()!.settle({ ok: false, error: new ServiceError('timeout', 'the request passed its deadline while queued') });
    }
  }

  private eligible(job: Job, executor: Executor): boolean {
    if (!executor.available || this.retiring.has(executor) || job.runningOn.has(executor)) return false;
    if (job.model && job.model.sha256 !== executor.modelSha256) return false;
    if (job.allClasses && !executor.returnsAllClasses) return false;
    if (job.image instanceof Float32Array && !executor.takesTensors) return false;
    if (executor.kind === 'local') return true;
    return job.offload && this.offload !== 'off' && !(job.volunteerFailures >= VOLUNTEER_TRIES && this.hasLocalExecutor());
  }

  private hasLocalExecutor(): boolean {
    for (const executor of this.executors.keys()) if (executor.kind === 'local' && executor.available && !this.retiring.has(executor)) return true;
    return false;
  }

  private hasFreeSlot(executor: Executor): boolean {
    return (this.executors.get(executor)?.length ?? Infinity) < executor.capacity;
  }

  /**
   * When could this executor start new work, if it were given it now? A batch past its expected
   * end is expected to run at least as long again as it has run so far: an executor that has
   * gone quiet (a frozen tab) looks later and later, never "free any moment now", so the queue
   * does not wait on it while others stand idle.
   */
  private startTime(executor: Executor, now: number): number {
    if (this.hasFreeSlot(executor)) return now;
    const ends = (this.executors.get(executor) ?? []).map((batch) => (batch.expectedEndAt >= now ? batch.expectedEndAt : now + (now - batch.startedAt)));
    return Math.max(now, Math.min(...ends));
  }

  /**
   * Proven executors first: while those that have earned their record can start everything
   * waiting, a newcomer (whose speed is only its claim, and which may be a tab that just went
   * silent or failed and came back) waits. Newcomers get the work the proven ones cannot take
   * now, and earn their standing with it.
   */
  private earliestFinisher(job: Job): Executor | undefined {
    if (this.offload === 'prefer') {
      const freeVolunteer =
        this.pickEarliest(job, (e) => e.kind === 'volunteer' && e.proven && this.hasFreeSlot(e)) ??
        this.pickEarliest(job, (e) => e.kind === 'volunteer' && this.hasFreeSlot(e));
      if (freeVolunteer) return freeVolunteer;
    }
    let provenFree = 0;
    for (const executor of this.executors.keys()) if (executor.proven && this.hasFreeSlot(executor) && this.eligible(job, executor)) provenFree++;
    // More waiting than the proven ones free can start: newcomers take the rest.
    const newcomersWelcome = provenFree < this.queue.length;
    return this.pickEarliest(job, (e) => e.proven || newcomersWelcome);
  }

  private pickEarliest(job: Job, include: (executor: Executor) => boolean): Executor | undefined {
    const now = performance.now();
    let best: Executor | undefined;
    let bestEnd = Infinity;
    for (const executor of this.executors.keys()) {
      if (!include(executor) || !this.eligible(job, executor)) continue;
      const end = this.startTime(executor, now) + executor.expectedServiceMs(1);
      // Ties go to the executor with free capacity, so an idle one is never passed over.
      if (end < bestEnd || (end === bestEnd && best && !this.hasFreeSlot(best))) {
        best = executor;
        bestEnd = end;
      }
    }
    return best;
  }

  private takeBatch(executor: Executor): Job[] {
    const batch: Job[] = [];
    for (let i = 0; i < this.queue.length && batch.length < executor.maxBatch; ) {
      const job = this.queue[i];
      if (job.settled || job.expired) {
        this.queue.splice(i, 1);
        job.settle({ ok: false, error: new ServiceError('timeout', 'the request passed its deadline while queued') });
      } else if (this.eligible(job, executor)) {
        batch.push(...this.queue.splice(i, 1));
      } else {
        i++;
      }
    }
    return batch;
  }

  private dispatch(executor: Executor, jobs: Job[]): void {
    if (jobs.length === 0) return;
    const startedAt = performance.now();
    const expectedMs = executor.expectedServiceMs(jobs.length);
    const inFlight: InFlight = { jobs, startedAt, expectedEndAt: startedAt + expectedMs };
    this.executors.get(executor)!.push(inFlight);
    for (const job of jobs) {
      job.startedAt ??= startedAt;
      job.attempts++;
      job.runningOn.add(executor);
    }
    if (this.hedgeAfter) {
      inFlight.hedgeTimer = setTimeout(() => this.hedge(executor, inFlight), expectedMs + this.hedgeAfter(expectedMs, executor));
      inFlight.hedgeTimer.unref();
    }
    this.emit('started', jobs, executor);
    const info = describeExecutor(executor);
    const images = jobs.map((job) => job.image);
    // Through a promise, so that an executor that throws instead of rejecting fails the same way.
    Promise.resolve()
      .then(() => executor.run(images, jobs.map((job) => job.purpose === 'verification'), jobs.some((job) => job.allClasses) ? jobs.map((job) => job.allClasses) : undefined))
      .then((batch) => {
        if (batch.results.length !== jobs.length) {
          throw new Error(`executor ${executor.id} returned ${batch.results.length} results for ${jobs.length} images`);
        }
        jobs.forEach((job, i) => {
          const success: JobSuccess = {
            ok: true,
            result: batch.results[i],
            executor: info,
            model: job.model,
            queueMs: (job.startedAt ?? startedAt) - job.enqueuedAt,
            inferenceMs: batch.inferenceMs,
            ...(batch.allClasses?.[i] ? { allClasses: batch.allClasses[i] } : {}),
          };
          if (executor.kind === 'local' || !this.reviewer || job.settled) job.settle(success);
          // A reviewer that fails must not leave the job unanswered: the answer stands unverified.
          else void this.reviewer(job, success, executor).then((outcome) => job.settle(outcome), () => job.settle(success));
        });
      })
      .catch((error: unknown) => {
        const failure = error instanceof Error ? error : new Error(String(error));
        this.emit('batchFailed', jobs, executor, failure);
        for (const job of jobs) job.runningOn.delete(executor);
        this.retryOrFail(jobs, failure, executor);
      })
      .finally(() => {
        clearTimeout(inFlight.hedgeTimer);
        this.lateBatches.delete(inFlight);
        for (const job of jobs) job.runningOn.delete(executor);
        const batches = this.executors.get(executor);
        if (batches) batches.splice(batches.indexOf(inFlight), 1);
        if (this.retiring.has(executor) && batches?.length === 0) {
          this.retiring.delete(executor);
          this.executors.delete(executor);
        }
        this.pump();
      });
  }

  /**
   * The batch is late: its executor is told, and its unsettled jobs wait for an idle proven
   * executor (never the same one) to run them again; the first answer wins. Only idle capacity
   * is used, so hedging never delays others; an unproven one is never used, so a late job does
   * not land on another unknown.
   */
  private hedge(from: Executor, inFlight: InFlight): void {
    if (inFlight.jobs.every((job) => job.settled) || this.closedWith) return;
    from.noteLate?.();
    this.lateBatches.set(inFlight, from);
    this.pump();
  }

  /**
   * Gives late batches to free proven executors. Called whenever one may have come free (the
   * pump runs then), not on a timer: hundreds of late batches polling would cost the main
   * thread more than the work they wait for.
   */
  private startHedges(): void {
    let freeProven = 0;
    for (const executor of this.executors.keys()) if (executor.proven && this.hasFreeSlot(executor) && !this.retiring.has(executor)) freeProven++;
    for (const [inFlight, from] of this.lateBatches) {
      if (freeProven === 0) return;
      const jobs = inFlight.jobs.filter((job) => !job.settled);
      if (jobs.length === 0) {
        this.lateBatches.delete(inFlight);
        continue;
      }
      const idle = this.pickEarliest(jobs[0], (e) => e !== from && e.proven && this.hasFreeSlot(e) && jobs.every((job) => this.eligible(job, e)));
      if (!idle) continue;
      this.lateBatches.delete(inFlight);
      freeProven--;
      this.race(from, idle, jobs);
    }
  }

  private race(from: Executor, idle: Executor, jobs: Job[]): void {
    this.emit('hedged', jobs, from, idle);
    const raced = jobs.slice(0, idle.maxBatch);
    void raced[0].outcome().then((outcome) => {
      const winner = outcome.ok ? outcome.executor.id : undefined;
      from.noteHedgeOutcome?.(winner === from.id);
      idle.noteHedgeOutcome?.(winner === idle.id);
      this.emit('hedgeSettled', from, idle, winner === from.id ? 'original' : winner === idle.id ? 'hedge' : 'neither');
    });
    this.dispatch(idle, raced);
  }

  /**
   * Jobs of a failed batch go back to the front of the queue, in order, unless they have had
   * their tries. Volunteers failing never use up a job's tries while a local worker could
   * compute it: after VOLUNTEER_TRIES such failures it waits for a local worker instead.
   */
  private retryOrFail(jobs: Job[], error: Error, executor: Executor): void {
    const localCanCompute = executor.kind === 'volunteer' && this.hasLocalExecutor();
    const retry: Job[] = [];
    for (const job of jobs) {
      // Settled, or still running elsewhere (a hedge): nothing to re-queue.
      if (job.settled || job.runningOn.size > 0) continue;
      // It has no answer yet: after a swap it is computed with the model in use now.
      if (!job.pinned && this.current) job.model = this.current;
      if (executor.kind === 'volunteer') job.volunteerFailures++;
      if (job.attempts < this.maxAttempts || localCanCompute) retry.push(job);
      else job.settle({ ok: false, error: new ServiceError('internal', `inference failed ${job.attempts} times: ${error.message}`) });
    }
    this.queue.unshift(...retry);
  }
}
