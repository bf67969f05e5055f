/**
 * What the hub reports about itself: `GET /api/status`, and the executor and statistics parts
 * of the live event stream. Shared so that the web UI reads exactly what the server writes.
 */
import type { HubInfo, ModelInfo } from './classify.ts';
import type { AdapterInfo, PauseReason, VolunteerBackend } from './volunteer.ts';
import type { ModelSwapStatus } from './model-swap.ts';

export interface EngineTrial {
  engine: string;
  available: boolean;
  threads?: number;
  load_ms?: number;
  warmup_ms?: number;
  error?: string;
}

export interface LocalWorkerStatus {
  id: string;
  kind: 'local';
  engine: string;
  threads: number;
  solo_threads?: number;
  state: string;
  busy: boolean;
  per_image_ms: number;
  warmup_ms: number;
  batches: number;
  images: number;
  restarts: number;
}

/**
 * `resting`: a batch just failed on it, or it was late on one; it takes no work for a while.
 * `paused`: the tab said it is hidden or frozen (protocol 2).
 */
export type VolunteerState = 'ready' | 'busy' | 'resting' | 'paused' | 'quarantined' | 'gone';
/**
 * What the hub's record of a tab is worth: `probation` until it has answered a few jobs on this
 * connection (and again after it was late or failed), then `trusted`; `backing_off` while it
 * rests after a failure or a late job; `paused` while the tab says it cannot work;
 * `quarantined` for good.
 */
export const VOLUNTEER_STANDINGS = ['probation', 'trusted', 'backing_off', 'paused', 'quarantined'] as const;
export type VolunteerStanding = (typeof VOLUNTEER_STANDINGS)[number];
/** `joining`: connected, loading and warming up the model, no hello yet. */
export type VolunteerConnectionState = 'joining' | VolunteerState;

/** One tab as `/api/status` and the web UI show it. */
export interface VolunteerStatus {
  id: string;
  kind: 'volunteer';
  state: VolunteerConnectionState;
  backend?: VolunteerBackend;
  adapter?: AdapterInfo;
  user_agent?: string;
  busy: boolean;
  per_image_ms?: number;
  overhead_ms?: number;
  max_batch?: number;
  jobs: number;
  images: number;
  failures: number;
  violations: number;
  connected_at: string;
  last_seen: string;
  quarantine_reason?: string;
  /** Absent until the tab said hello. */
  standing?: VolunteerStanding;
  /** The volunteer protocol version this connection speaks. */
  protocol?: number;
  paused_reason?: PauseReason;
  /** Jobs of its that ran late enough to be hedged. */
  late_jobs?: number;
  /** Hedge races it was in (its late job run again elsewhere, or another's run again on it): answered first, or not. */
  hedges_won?: number;
  hedges_lost?: number;
  /** Jobs it handed back when it paused. */
  handed_back?: number;
}

export type ExecutorStatus = LocalWorkerStatus | VolunteerStatus;

export type UpgradeRefusal = 'origin' | 'token' | 'capacity' | 'stopping';

export interface VolunteerRegistryStats {
  connected: number;
  joined_total: number;
  dropped_total: number;
  refused_hellos: number;
  violations_total: number;
  refused_upgrades: Record<UpgradeRefusal, number>;
}

export const UNTRAINED_WARNING =
  'UNTRAINED WEIGHTS: this ResNet50 was generated with random weights; its predictions are meaningless (labels are real, the ranking is not).';

/** The int8 model's fidelity against fp32 on held-apart images (see `npm run model:quantize`). */
export interface Int8FidelitySummary {
  held_apart_images: number;
  pooled_sqnr_db: number;
  logits_sqnr_db: number;
  top1_agreement: number;
  int8_top1_in_fp32_top5: number;
  max_probability_diff: number;
}

export interface StatusReport {
  /** Which hub this is (`--hub-id`): the dashboard shows this hub only. */
  hub: HubInfo;
  ready: boolean;
  model: ModelInfo & { warning?: string; int8_fidelity?: Int8FidelitySummary };
  executors: LocalWorkerStatus[];
  engine: { chosen: string | undefined; workers?: number; threads_per_worker?: number; trials: EngineTrial[] };
  volunteers: VolunteerStatus[];
  volunteer_stats: VolunteerRegistryStats;
  queue: { depth: number; running: number };
  /** Replies so far by outcome: `ok` or an error code. */
  requests: Record<string, number>;
  /** A swap to new weights under way, and the swaps since start. */
  model_swap?: ModelSwapStatus;
  uptime_s: number;
}
