/**
 * How long to wait before retry number `attempt` (1-based): exponential, capped, with "equal
 * jitter" (half fixed, half random) so clients that failed together do not retry in lockstep,
 * yet never retry at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Waits `ms`, rejecting with the signal's reason when it aborts first. */
export async function waitOrAbort(ms: number, signal?: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal });
}
