/**
 * A model swap as the hub reports it (`/api/status`, the `model.swap` event, the dashboard):
 * the hub takes new weights while it serves, in steps, and keeps a history of its swaps.
 */
import type { ModelInfo } from './classify.ts';

/** preparing: ONNX export (and int8) of the new store; warming: new workers load it while the old serve; switching: admission moves over, the old workers finish what they hold. */
export const SWAP_STEPS = ['preparing', 'warming', 'switching'] as const;
export type SwapStep = (typeof SWAP_STEPS)[number];
/** refused: not tried (memory limit, same weights); failed: tried, the old model kept serving. */
export type SwapState = SwapStep | 'done' | 'failed' | 'refused';

/** What asked for the swap: the store changed on disk, SIGHUP, or POST /api/model/reload. */
export type SwapTrigger = 'store' | 'sighup' | 'api';

export interface ModelSwapRecord {
  id: number;
  trigger: SwapTrigger;
  state: SwapState;
  /** The weights' SHA-256 before, and the one the swap moves to (once the new store is read). */
  from: string;
  to?: string;
  started_at: string;
  finished_at?: string;
  /** Why it failed or was refused. */
  reason?: string;
  /** Milliseconds spent in each step so far, and from start to the switch. */
  steps_ms: Partial<Record<SwapStep, number>>;
  to_switch_ms?: number;
  /** The hub's resident memory before the swap and at its highest during it. */
  rss_before_mib?: number;
  rss_peak_mib?: number;
}

export interface ModelSwapStatus {
  /** The swap under way, if any. */
  current?: ModelSwapRecord;
  /** Swaps since the hub started, oldest first (the last 50). */
  history: ModelSwapRecord[];
}

/** Sent on `/ws/events` whenever a swap moves a step, with the model in use after it. */
export interface ModelSwapEvent {
  type: 'model.swap';
  at: string;
  swap: ModelSwapRecord;
  model: ModelInfo;
}
