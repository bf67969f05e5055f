/**
 * How long to wait before retry number `retry` (1 for the first retry): exponential, capped,
 * with "equal jitter" (half fixed, half random) so that clients that failed together (tabs
 * dropped by one hub, downloads cut by one outage) do not come back in lockstep, yet never
 * retry at once. The one rule for every retry the product makes, in Node and in the browser.
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export function backoffDelay(retry: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, retry - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
