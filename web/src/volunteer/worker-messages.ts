/**
 * Messages between the volunteer page (main thread) and its model worker. Both sides are this
 * app's own code, so these are plain types (the hub's messages are the ones validated by zod).
 */
import type { AdapterInfo, VolunteerBackend } from '../../../shared/protocol/volunteer.ts';

export type { AdapterInfo, VolunteerBackend };

/**
 * Test hooks, see main.ts: 'wrong' makes the worker answer deliberately wrong top-k's;
 * 'lose-device' destroys its GPU device as its first job starts, as a driver reset would.
 */
export const FAULT_MODES = ['wrong', 'lose-device'] as const;
export type FaultMode = (typeof FAULT_MODES)[number] | null;

export type ToWorker =
  | { type: 'init'; fault: FaultMode; backend: VolunteerBackend | null }
  /** Get the model with these weights ready (cache or download), warm it up, answer 'model-ready'. */
  | { type: 'load'; url: string; sha256: string; maxBatch: number }
  | { type: 'run'; seq: number; jobId: number; batch: number; pixels: ArrayBuffer; topK: number };

export type LoadPhase = 'cache' | 'download' | 'verify' | 'save' | 'compile' | 'compile-batch' | 'warm-up';

export type FromWorker =
  | { type: 'backend'; backend: VolunteerBackend; adapter: AdapterInfo | null; notes: string[] }
  | { type: 'init-failed'; message: string; notes: string[] }
  | { type: 'progress'; phase: LoadPhase; loaded?: number; total?: number }
  | {
      type: 'model-ready';
      sha256: string;
      source: 'memory' | 'cache' | 'download';
      bytes: number;
      /** Time of the first inference (shader compilation on WebGPU). */
      firstRunMs: number;
      /** Time of one warm inference of one image. */
      perImageMs: number;
      /** The largest batch this tab offers (≤ the hub's max_batch); see SLOW_FIRST_RUN_MS in model-worker.ts. */
      maxBatch: number;
    }
  | { type: 'model-failed'; sha256: string; message: string; integrity: boolean }
  | { type: 'result'; seq: number; jobId: number; indices: number[][]; probabilities: number[][]; computeMs: number }
  | { type: 'run-failed'; seq: number; jobId: number; message: string }
  | { type: 'warn'; message: string }
  /** The GPU device is gone (driver reset, GPU process crash): this worker can run nothing more. */
  | { type: 'device-lost'; message: string };
