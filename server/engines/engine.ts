/**
 * An engine runs the model on a batch of preprocessed images, inside one worker thread.
 * Every engine takes the same input and must give the same output.
 */
import type { Precision } from '../../shared/protocol/classify.ts';

export const ENGINE_NAMES = ['tfjs-node', 'onnx', 'wasm'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];
/** What --engine takes: one engine, or `auto`, which times each that loads and keeps the fastest. */
export const ENGINE_CHOICES = ['auto', ...ENGINE_NAMES] as const;
export type EngineChoice = (typeof ENGINE_CHOICES)[number];

export interface EngineOptions {
  /** The model store (model.json + shards, manifest.json, model.onnx, model.int8.onnx). */
  modelDir: string;
  /** fp32 (default), or int8 (onnx only: model.int8.onnx). */
  precision?: Precision;
  /** Threads this engine may use for one batch (intra-op parallelism). */
  threads: number;
  /**
   * Whether idle threads may busy-wait for the next piece of work. Faster when each thread has
   * a core to itself; ruinous when workers share cores, as spinning threads steal them.
   */
  spin?: boolean;
  /**
   * Threads for a batch run while every other worker is idle ("solo"), when that is more than
   * `threads`: a lone request then gets the whole machine, a busy hub one core per worker.
   */
  soloThreads?: number;
}

export interface Engine {
  readonly name: EngineName;
  /**
   * @param rgb `batch` images of 224×224×3 uint8 RGB, one after another; or, as a Float32Array,
   *   the model's input already made from them (shared/caffe.ts's toCaffeInput)
   * @param solo run with `soloThreads` (the other workers are idle)
   * @param reference compute in fp32 even if the engine serves int8 (verifying a volunteer)
   * @returns softmax probabilities, `batch` × 1000
   */
  infer(rgb: Uint8Array | Float32Array, batch: number, solo?: boolean, reference?: boolean): Promise<Float32Array>;
  dispose(): void;
}
