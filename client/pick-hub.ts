/**
 * Which hub gets the next send of a request: an available hub with the fewest requests
 * outstanding, preferring hubs that have not yet refused or ignored this request, never one
 * already working on it. Ties rotate, so equal hubs share the work evenly.
 */
import type { HubConnection } from './hub-connection.ts';

export interface PickContext {
  now: number;
  /** Hubs that refused this request, or stayed silent on it: used only when no other is available. */
  avoid: ReadonlySet<HubConnection>;
  /** Hubs holding a send of this request right now: never sent it twice. */
  busyWith: ReadonlySet<HubConnection>;
}

export class HubPicker {
  private turn = 0;

  pick(hubs: readonly HubConnection[], context: PickContext): HubConnection | undefined {
    const usable = hubs.filter((hub) => hub.available(context.now) && !context.busyWith.has(hub));
    const fresh = usable.filter((hub) => !context.avoid.has(hub));
    const candidates = fresh.length > 0 ? fresh : usable;
    if (candidates.length === 0) return undefined;
    let fewest = Infinity;
    for (const hub of candidates) fewest = Math.min(fewest, hub.live.size);
    const tied = candidates.filter((hub) => hub.live.size === fewest);
    this.turn = (this.turn + 1) % 1_000_000;
    return tied[this.turn % tied.length];
  }
}
