/**
 * Messages between the hub's main thread and an inference worker thread. Images go through a
 * buffer the two share; results travel as transferred buffers.
 */
import type { EngineName } from '../engines/engine.ts';
import type { Precision } from '../../shared/protocol/classify.ts';

export interface InferenceWorkerData {
  workerId: string;
  engine: EngineName;
  modelDir: string;
  precision: Precision;
  threads: number;
  spin: boolean;
  soloThreads?: number;
  /** Top-k computed in the worker, so only a few numbers per image come back. */
  topK: number;
  /**
   * Room for one batch of `maxBatch` images, written by the main thread while no batch is
   * pending. Shared rather than a new buffer per batch: allocating 150 KB per image on the main
   * thread and handing it over cost about 0.8 ms of CPU per image in the main thread and V8's
   * helpers (page faults, external-memory accounting, GC), measured at int8 saturation.
   */
  batchBuffer: SharedArrayBuffer;
}

export interface InferRequest {
  type: 'infer';
  batchId: number;
  /** `batch` images of 224×224×3 RGB, one after another; absent when they are in the batch buffer. */
  rgb?: Uint8Array;
  /** The batch as the model's float input instead (some image came that way): `batch` × 150528 floats. */
  tensors?: Float32Array;
  batch: number;
  /** Every other worker is idle: use the engine's solo threads. */
  solo: boolean;
  /** Per image: compute at the reference precision (fp32), to verify a volunteer. */
  reference?: boolean[];
  /** Some image wants every class's probability: the result carries them all (`all`). */
  allClasses?: boolean;
}

export type WorkerToMain =
  /** `modelSha256`: the weights it loaded, from the store's manifest (absent without one). */
  | { type: 'ready'; warmupMs: number; soloWarmupMs?: number; loadMs: number; modelSha256?: string }
  | { type: 'result'; batchId: number; indices: Int32Array; probabilities: Float32Array; inferenceMs: number; all?: Float32Array }
  | { type: 'failed'; batchId: number; message: string }
  | { type: 'fatal'; message: string };
