/** What the scheduler is configured with, what it reports as it works, and the hook that reviews volunteers' answers. */
import type { Executor } from '../executors/executor.ts';
import type { OffloadMode } from './dispatch-policy.ts';
import type { Job, JobOutcome, JobSuccess } from './job.ts';

export interface SchedulerEvents {
  queued: [job: Job];
  started: [jobs: Job[], executor: Executor];
  settled: [job: Job, outcome: JobOutcome];
  batchFailed: [jobs: Job[], executor: Executor, error: Error];
  hedged: [jobs: Job[], from: Executor, to: Executor];
  /** A hedge race ended: whose answer counted (`neither`: both failed, or another executor's). */
  hedgeSettled: [from: Executor, to: Executor, winner: 'original' | 'hedge' | 'neither'];
}

/** Decides the outcome of a job a volunteer answered (verification); may take its time. */
export type ResultReviewer = (job: Job, outcome: JobSuccess, executor: Executor) => Promise<JobOutcome>;

export interface SchedulerOptions {
  /** How many times a job may be handed to an executor before it fails. */
  maxAttempts?: number;
  /**
   * How long the oldest waiting job may be held back so that a free executor gets a fuller
   * batch. 0 (the default) never holds anything back: a lone request runs at once.
   */
  batchWaitMs?: number;
  offload?: OffloadMode;
  /**
   * A batch still running `hedgeAfter(expected, executor)` ms past its expected end is run again
   * on an idle proven executor, if there is one. Undefined: never hedge.
   */
  hedgeAfter?: (expectedMs: number, executor: Executor) => number;
}
