/**
 * Which model store the bench uses, and making it ready for the engine before anything is
 * timed, so neither the ceiling nor the hub's start-up pays for an ONNX export or an int8
 * quantization.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { EngineName } from '../server/engines/engine.ts';
import type { Precision } from '../shared/protocol/classify.ts';
import { ensureOnnxModel } from '../model-tools/onnx-export.ts';
import { ensureInt8Model } from '../model-tools/onnx/quantize/int8-model.ts';
import { REPO_ROOT } from '../lib/repo-root.ts';


/** The real store when there is one, else the generated test store (untrained, same cost). */
export function defaultModelDir(): string {
  const real = path.join(REPO_ROOT, 'models/resnet50');
  return existsSync(path.join(real, 'manifest.json')) ? 'models/resnet50' : 'models/test-resnet50';
}

/** What the store must hold for a run: model.onnx for the onnx engine, and model.int8.onnx for int8. */
export async function prepareModel(engine: EngineName, modelDir: string, precision: Precision = 'fp32', onDetail?: (text: string) => void): Promise<void> {
  if (engine !== 'onnx') return;
  await ensureOnnxModel(modelDir);
  if (precision !== 'int8') return;
  // The hub would quantize at start-up too, but then its start-up time would measure the quantizer.
  const result = await ensureInt8Model(modelDir, { onProgress: (stage, done, total) => onDetail?.(`int8: ${stage} ${done}/${total}`) });
  if (result.quantized) onDetail?.(`quantized model.int8.onnx in ${(result.ms / 1000).toFixed(1)} s`);
}
