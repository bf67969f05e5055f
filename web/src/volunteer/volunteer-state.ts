/**
 * What the volunteer page shows, as one plain object (tests read it as `window.volunteerState`),
 * and the wording of its one-line status.
 */
import type { PauseReason } from '../../../shared/protocol/volunteer.ts';
import type { AdapterInfo, FaultMode, FromWorker, VolunteerBackend } from './worker-messages.ts';

export const READY_DETAIL = 'Ready — waiting for work';
export const PAUSED_DETAIL: Record<PauseReason, string> = {
  hidden: 'Paused while this tab is hidden — it takes work again when shown',
  frozen: 'Paused: the browser froze this tab',
};

export type Phase =
  | 'idle'
  | 'connecting'
  | 'loading'
  | 'downloading'
  | 'warming-up'
  | 'ready'
  | 'computing'
  /** Hidden or frozen: the hub gives it no work until it is shown again. */
  | 'paused'
  | 'reconnecting'
  | 'stopped'
  | 'quarantined'
  | 'refused'
  | 'error';

/** Everything the page shows, and what tests read as `window.volunteerState`. */
export interface VolunteerState {
  state: Phase;
  /** One line for people: "Downloading the model… 42%", "Reconnecting in 4 s". */
  detail: string;
  backend: VolunteerBackend | null;
  adapter: AdapterInfo | null;
  /** Why faster backends were not used, if they were not. */
  backendNotes: string[];
  jobsDone: number;
  imagesDone: number;
  jobsFailed: number;
  /** Latest time per image in ms: the warm-up's, then each job's (compute_ms / batch). */
  perImageMs: number | null;
  /** Over every job done since Start. */
  averagePerImageMs: number | null;
  warmupPerImageMs: number | null;
  /** The first inference after loading (shader compilation on WebGPU). */
  firstRunMs: number | null;
  volunteerId: string | null;
  lastError: string | null;
  /** 0..1 while downloading. */
  downloadProgress: number | null;
  modelSha256: string | null;
  /** Where the model in use came from: this worker's memory, IndexedDB, or the hub. */
  modelSource: 'memory' | 'cache' | 'download' | null;
  modelBytes: number | null;
  currentJobId: number | null;
  /** The largest batch this tab said it takes (hello's max_batch). */
  maxBatch: number | null;
  /** Epoch ms of the next connection attempt while reconnecting. */
  reconnectAt: number | null;
  /** Welcomes received since Start. */
  connections: number;
  /** GPU devices lost since the page opened (each one means a new model worker and a rejoin). */
  deviceLosses: number;
  fault: FaultMode;
}

export function initialVolunteerState(fault: FaultMode): VolunteerState {
  return {
    state: 'idle',
    detail: 'Not started',
    backend: null,
    adapter: null,
    backendNotes: [],
    jobsDone: 0,
    imagesDone: 0,
    jobsFailed: 0,
    perImageMs: null,
    averagePerImageMs: null,
    warmupPerImageMs: null,
    firstRunMs: null,
    volunteerId: null,
    lastError: null,
    downloadProgress: null,
    modelSha256: null,
    modelSource: null,
    modelBytes: null,
    currentJobId: null,
    maxBatch: null,
    reconnectAt: null,
    connections: 0,
    deviceLosses: 0,
    fault,
  };
}

/** The counters after a job of `batch` images that took `computeMs`. */
export function jobDonePatch(state: VolunteerState, batch: number, computeMs: number): Partial<VolunteerState> {
  const imagesDone = state.imagesDone + batch;
  const totalMs = (state.averagePerImageMs ?? 0) * state.imagesDone + computeMs;
  return { jobsDone: state.jobsDone + 1, imagesDone, perImageMs: computeMs / batch, averagePerImageMs: totalMs / imagesDone };
}

/** What the page shows once the model worker has the model ready. */
export function modelReadyPatch(state: VolunteerState, ready: Extract<FromWorker, { type: 'model-ready' }>): Partial<VolunteerState> {
  return {
    modelSource: ready.source,
    modelBytes: ready.bytes,
    warmupPerImageMs: ready.perImageMs,
    perImageMs: state.perImageMs ?? ready.perImageMs,
    // From memory nothing was compiled: the first run worth showing is still the earlier one.
    firstRunMs: ready.source === 'memory' ? state.firstRunMs : ready.firstRunMs,
  };
}

const COMPILE_DETAILS = {
  compile: 'Compiling for your GPU… (the first time can take a minute)',
  'compile-batch': 'Compiling for batches of images…',
  'warm-up': 'Warming up…',
} as const;

/** How the model worker's progress while loading shows on the page. */
export function progressPatch(message: Extract<FromWorker, { type: 'progress' }>): Partial<VolunteerState> {
  if (message.phase === 'download' && message.total) {
    const fraction = (message.loaded ?? 0) / message.total;
    return {
      state: 'downloading',
      downloadProgress: fraction,
      detail: `Downloading the model… ${Math.floor(fraction * 100)}% of ${formatBytes(message.total)}`,
    };
  }
  if (message.phase === 'verify' || message.phase === 'save') {
    return { state: 'downloading', downloadProgress: 1, detail: 'Checking and storing the model…' };
  }
  if (message.phase === 'compile' || message.phase === 'compile-batch' || message.phase === 'warm-up') {
    return { state: 'warming-up', downloadProgress: null, detail: COMPILE_DETAILS[message.phase] };
  }
  return { state: 'loading', detail: 'Loading the model…' };
}

export function reconnectDetail(delayMs: number): string {
  return `Reconnecting in ${Math.max(1, Math.ceil(delayMs / 1000))} s`;
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(0)} kB`;
  return `${bytes} B`;
}
