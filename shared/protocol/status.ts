/**
 * What the hub reports about itself: `GET /api/status`, and the executor and statistics parts
 * of the live event stream. Shared so that the web UI reads exactly what the server writes.
 */
import type { HubInfo, ModelInfo } from './classify.ts';
import type { AdapterInfo, VolunteerBackend } from './volunteer.ts';
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

/** `resting`: a batch just failed on it; it takes no work for a while. */
export type VolunteerState = 'ready' | 'busy' | 'resting' | 'quarantined' | 'gone';
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
