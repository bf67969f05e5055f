/**
 * Waiting between download retries; how long is shared/backoff.ts's rule.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Waits `ms`, rejecting with the signal's reason when it aborts first. */
export async function waitOrAbort(ms: number, signal?: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal });
}
