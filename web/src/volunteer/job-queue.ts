/**
 * Jobs from the hub waiting for the model worker, which runs one at a time. Each run carries a
 * sequence number, so that an answer is matched to the run it is for, and the epoch of the
 * connection it came on, so that an answer for a connection that has since ended is not sent.
 */
import { INPUT_SIZE } from '../../../shared/caffe.ts';
import { decodeJobFrame } from '../../../shared/protocol/volunteer.ts';
import type { JobFrame } from '../../../shared/protocol/volunteer.ts';

/** A job frame from the hub, checked down to its image size; throws a RangeError saying what is wrong. */
export function readJobFrame(bytes: Uint8Array): JobFrame {
  const job = decodeJobFrame(bytes);
  if (job.height !== INPUT_SIZE || job.width !== INPUT_SIZE) {
    throw new RangeError(`job images are ${job.height}×${job.width}, expected ${INPUT_SIZE}×${INPUT_SIZE}`);
  }
  return job;
}

export interface RunningJob {
  seq: number;
  epoch: number;
  jobId: number;
  batch: number;
}

export class JobQueue {
  private waiting: JobFrame[] = [];
  private running: RunningJob | null = null;
  private seq = 0;

  push(job: JobFrame): void {
    this.waiting.push(job);
  }

  /** Forgets the jobs not started (their connection ended); a running one still finishes. */
  dropWaiting(): void {
    this.waiting = [];
  }

  /** Forgets everything, the running job included (the worker is gone). */
  reset(): void {
    this.waiting = [];
    this.running = null;
  }

  /** The next job, now running; null while one runs or none waits. */
  start(epoch: number): { run: RunningJob; job: JobFrame } | null {
    if (this.running) return null;
    const job = this.waiting.shift();
    if (!job) return null;
    this.running = { seq: ++this.seq, epoch, jobId: job.jobId, batch: job.batch };
    return { run: this.running, job };
  }

  /** The running job, given up (its worker is gone); null if none runs. */
  abandonRunning(): RunningJob | null {
    const run = this.running;
    this.running = null;
    return run;
  }

  /** The running job that the answer numbered `seq` is for, now finished; null if none is. */
  finish(seq: number): RunningJob | null {
    const run = this.running;
    if (!run || run.seq !== seq) return null;
    this.running = null;
    return run;
  }
}
