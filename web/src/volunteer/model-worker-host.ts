/**
 * The page's handle on its model worker: starts one (and a new one after a lost GPU device),
 * hands it the model to load and the hub's jobs one at a time, and matches each answer to the
 * run it is for, so an answer from a worker that has since been replaced is never taken.
 */
import type { JobFrame } from '../../../shared/protocol/volunteer.ts';
import { JobQueue } from './job-queue.ts';
import type { RunningJob } from './job-queue.ts';
import { spawnModelWorker } from './spawn-model-worker.ts';
import type { FaultMode, FromWorker, ToWorker, VolunteerBackend } from './worker-messages.ts';

export type JobAnswer = Extract<FromWorker, { type: 'result' | 'run-failed' }>;

export interface ModelWorkerEvents {
  /** Everything the worker says but the answers to jobs. */
  onMessage(message: Exclude<FromWorker, JobAnswer>): void;
  /** The answer to a run, with the run it is for. */
  onAnswer(run: RunningJob, message: JobAnswer): void;
  /** The worker threw past its own handlers. */
  onFailed(message: string): void;
}

export class ModelWorkerHost {
  private worker: Worker | null = null;
  private readonly jobs = new JobQueue();

  constructor(private readonly events: ModelWorkerEvents) {}

  get started(): boolean {
    return this.worker !== null;
  }

  /** A new worker; one already running is ended first. */
  start(fault: FaultMode, backend: VolunteerBackend | null): void {
    this.stop();
    const worker = spawnModelWorker({
      onMessage: (message) => {
        if (worker !== this.worker) return;
        if (message.type !== 'result' && message.type !== 'run-failed') {
          this.events.onMessage(message);
          return;
        }
        const run = this.jobs.finish(message.seq);
        if (run) this.events.onAnswer(run, message);
      },
      onFailed: (message) => {
        if (worker === this.worker) this.events.onFailed(message);
      },
    });
    this.worker = worker;
    this.post({ type: 'init', fault, backend });
  }

  /** Ends the worker; the job it was running, now given up, if any. */
  stop(): RunningJob | null {
    this.worker?.terminate();
    this.worker = null;
    const abandoned = this.jobs.abandonRunning();
    this.jobs.reset();
    return abandoned;
  }

  load(url: string, sha256: string, maxBatch: number): void {
    this.post({ type: 'load', url, sha256, maxBatch });
  }

  enqueue(job: JobFrame): void {
    this.jobs.push(job);
  }

  /** Forgets the jobs not started (their connection ended, or the tab paused); a running one still finishes. */
  dropWaiting(): void {
    this.jobs.dropWaiting();
  }

  /** Starts the next waiting job unless one is running: the run started, or null. */
  runNext(epoch: number, topK: number): { run: RunningJob; job: JobFrame } | null {
    if (!this.worker) return null;
    const next = this.jobs.start(epoch);
    if (!next) return null;
    const { run, job } = next;
    const pixels = job.pixels.slice().buffer; // exactly the images, transferred to the worker
    this.post({ type: 'run', seq: run.seq, jobId: job.jobId, batch: job.batch, pixels, topK }, [pixels]);
    return next;
  }

  private post(message: ToWorker, transfer: Transferable[] = []): void {
    this.worker?.postMessage(message, transfer);
  }
}
