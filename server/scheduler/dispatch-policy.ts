/**
 * The scheduler's rules of thumb, apart from its mechanics: where work may go (offload modes),
 * how late a batch may run before it is hedged, and how many failures on volunteers a job may
 * take before only local workers get it.
 */
import type { Executor } from '../executors/executor.ts';

/** Where work may go: `off` keeps it local, `auto` goes where it finishes first, `prefer` fills free volunteers first. */
export const OFFLOAD_MODES = ['off', 'auto', 'prefer'] as const;
export type OffloadMode = (typeof OFFLOAD_MODES)[number];

/**
 * How long past its expected end a batch waits before it is hedged: as long again as it was
 * expected to take, and never less than a floor. The floor is low for a volunteer whose
 * expectation is its own record (a proven tab that has been fast: a late answer from it is
 * news, often a frozen tab), and high otherwise: a tab still on its claim says little yet, and
 * a local worker late on a busy machine is slow, not gone.
 */
export function defaultHedgeAfter(expectedMs: number, executor: Executor): number {
  return Math.max(expectedMs, executor.kind === 'volunteer' && executor.proven ? PROVEN_VOLUNTEER_HEDGE_FLOOR_MS : HEDGE_FLOOR_MS);
}
export const PROVEN_VOLUNTEER_HEDGE_FLOOR_MS = 50;
export const HEDGE_FLOOR_MS = 500;
/** After this many failed tries on volunteers, a job runs only on local workers (when there are any). */
export const VOLUNTEER_TRIES = 2;
