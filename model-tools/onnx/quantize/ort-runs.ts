/**
 * Running an in-memory ONNX graph with onnxruntime-node over a set of images, with chosen
 * intermediate tensors exposed as extra graph outputs (a diagnostic copy of the model: the
 * file the hub serves never has them, as they stop onnxruntime from fusing those nodes).
 */
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';

import { INPUT_CHANNELS, INPUT_SIZE, INPUT_VALUES_PER_IMAGE, toCaffeInput } from '../../../shared/caffe.ts';
import { DataType } from '../ir.ts';
import type { Model } from '../ir.ts';
import { encodeModel } from '../protobuf.ts';

/** `model` with `tensors` added to its outputs (float32, shape left to onnxruntime). */
export function withOutputs(model: Model, tensors: readonly string[]): Model {
  const existing = new Set(model.graph.output.map((o) => o.name));
  const extra = tensors.filter((t) => !existing.has(t)).map((name) => ({ name, elem_type: DataType.FLOAT }));
  return { ...model, graph: { ...model.graph, output: [...model.graph.output, ...extra] } };
}

export async function createSession(model: Model | Uint8Array, threads = availableParallelism()): Promise<ort.InferenceSession> {
  const bytes = model instanceof Uint8Array ? model : await encodeModel(model);
  return ort.InferenceSession.create(bytes, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
}

/** Runs image `index` of `rgb` (224×224×3 each) and returns the named outputs as float32. */
export async function runImage(
  session: ort.InferenceSession,
  rgb: Uint8Array,
  index: number,
  outputs: readonly string[],
): Promise<Map<string, Float32Array>> {
  const image = rgb.subarray(index * INPUT_VALUES_PER_IMAGE, (index + 1) * INPUT_VALUES_PER_IMAGE);
  const input = new ort.Tensor('float32', toCaffeInput(image, 1), [1, INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS]);
  const results = await session.run({ [session.inputNames[0]]: input }, [...outputs]);
  const out = new Map<string, Float32Array>();
  for (const name of outputs) {
    const t = results[name];
    if (!t || t.type !== 'float32') throw new Error(`onnxruntime gave no float32 output '${name}'`);
    out.set(name, t.data as Float32Array);
  }
  return out;
}

export function imageCount(rgb: Uint8Array): number {
  return rgb.length / INPUT_VALUES_PER_IMAGE;
}
