/**
 * The rules of thumb a volunteer tab is held to, apart from the executor's mechanics: how long a
 * job may take before it fails, how long a tab rests after a failure or a late job, and how much
 * its record must show before its own times count (probation).
 */

/** A batch fails when its answer takes longer than max(minMs, factor × expected). */
export interface JobTimeout {
  minMs: number;
  factor: number;
}

export const DEFAULT_JOB_TIMEOUT: JobTimeout = { minMs: 60_000, factor: 20 };
export const DEFAULT_MAX_CONSECUTIVE_FAILURES = 3;
export const DEFAULT_FAILURE_REST_MS = 1000;
const MAX_FAILURE_REST_MS = 30_000;

/**
 * A tab is on probation until it has answered this many jobs: one image at a time, and its
 * claimed speed counts for no more than NEWCOMER_FLOOR_MS an image. A tab that reconnects
 * starts again here, so a bad record cannot be shed by reconnecting into a good one; so does a
 * tab that was late on a job (hedged) or failed one.
 */
export const PROBATION_JOBS = 3;
export const NEWCOMER_FLOOR_MS = 15;

export function jobTimeoutMs(timeout: JobTimeout, expectedMs: number): number {
  return Math.max(timeout.minMs, timeout.factor * expectedMs);
}

/** The rest after `strikes` failures or late jobs in a row: doubling from the base, up to a ceiling. */
export function restMs(baseMs: number, strikes: number): number {
  return Math.min(baseMs * 2 ** (Math.max(1, strikes) - 1), MAX_FAILURE_REST_MS);
}
