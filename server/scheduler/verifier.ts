/**
 * Spot-check verification of volunteers' answers: a share of them is recomputed on a local
 * worker and compared. A volunteer that disagrees is reported (the hub quarantines it). With
 * a fraction of 1 every answer is checked before its reply goes out, and a wrong one is
 * replaced by the local answer; below 1 the reply goes out at once and the check follows.
 *
 * Volunteers compute in fp32. When the hub's workers serve int8 (--precision int8), the check
 * is still made against fp32: a verification job is marked as such (Job.purpose) and the
 * worker computes it on model.onnx, not model.int8.onnx (see onnx-engine.ts). So the same
 * tolerance holds, and an honest volunteer is never blamed for int8's error (int8's top-1
 * differs from fp32's on some images, which no probability tolerance could excuse).
 */
import type { TopK } from '../../shared/labels.ts';
import type { Executor } from '../executors/executor.ts';
import { Job } from './job.ts';
import type { JobOutcome, JobSuccess } from './job.ts';
import type { ResultReviewer, Scheduler } from './scheduler.ts';

/**
 * The share of a volunteer's answers that is checked follows its standing: its first answer is
 * always checked, and the share falls as 2 / (2 + n) with the n answers it has earned since it
 * last lost its standing, down to the configured fraction. A tab that lies now and then cannot
 * hide behind a fixed 5% by reconnecting: on a new connection it starts from the first answer
 * again. A fraction of 0 turns checking off for everyone.
 */
export function checkChance(fraction: number, executor: Pick<Executor, 'earnedAnswers'>): number {
  if (fraction <= 0) return 0;
  const earned = executor.earnedAnswers;
  if (earned === undefined) return fraction;
  return Math.min(1, Math.max(fraction, 2 / (2 + earned)));
}

/** Same top-1, and every top-k probability within this of the local one. */
export const DEFAULT_TOLERANCE = 0.02;

export interface VerifierOptions {
  fraction: number;
  tolerance?: number;
  random?: () => number;
  onVerdict?: (executor: Executor, agreed: boolean, detail: string) => void;
}

export function agree(volunteer: TopK, local: TopK, tolerance: number): { agreed: boolean; detail: string } {
  if (volunteer.indices[0] !== local.indices[0]) {
    return { agreed: false, detail: `top-1 ${volunteer.indices[0]} where the local worker says ${local.indices[0]}` };
  }
  const k = Math.min(volunteer.probabilities.length, local.probabilities.length);
  for (let i = 0; i < k; i++) {
    const gap = Math.abs(volunteer.probabilities[i] - local.probabilities[i]);
    if (!(gap <= tolerance)) return { agreed: false, detail: `probability #${i + 1} off by ${gap.toFixed(4)} (tolerance ${tolerance})` };
  }
  return { agreed: true, detail: 'agrees' };
}

export function createVerifier(scheduler: Scheduler, options: VerifierOptions): ResultReviewer {
  const tolerance = options.tolerance ?? DEFAULT_TOLERANCE;
  const random = options.random ?? Math.random;

  const recompute = async (job: Job): Promise<JobOutcome> => {
    // Pinned to the volunteer's model: across a swap, the check is made with the weights the answer came from.
    // A copy: the check may run after the request is answered and its image's memory reused.
    const check = new Job({ id: `${job.id}:verify`, image: job.image.slice(), offload: false, purpose: 'verification', model: job.model, pinned: true });
    // In front of the queue: a reply may be waiting for it.
    scheduler.submit(check, true);
    return check.outcome();
  };

  const judge = (executor: Executor, volunteer: JobSuccess, local: JobOutcome): JobOutcome => {
    if (!local.ok) return volunteer; // nothing to compare with (no local worker could run it)
    const verdict = agree(volunteer.result, local.result, tolerance);
    options.onVerdict?.(executor, verdict.agreed, verdict.detail);
    return verdict.agreed ? volunteer : { ...local, queueMs: volunteer.queueMs };
  };

  return async (job, volunteer, executor) => {
    const chance = checkChance(options.fraction, executor);
    if (chance <= 0 || (chance < 1 && random() >= chance)) return volunteer;
    const checked = recompute(job).then((local) => judge(executor, volunteer, local));
    // Only the configured fraction of 1 holds replies back for their check; a newcomer's checks follow its reply.
    return options.fraction >= 1 ? checked : volunteer;
  };
}
