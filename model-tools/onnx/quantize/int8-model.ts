/**
 * The store's int8 model: model.int8.onnx and its sidecar model.int8.onnx.json, made from the
 * store's model.onnx. It is keyed on the weights' SHA-256 and on a key over everything else
 * that decides its content (quantizer version, exporter version, settings, calibration
 * images); `ensureInt8Model` re-makes it whenever either changes, as model.onnx is re-exported,
 * so a stale int8 file is never served. The fidelity report goes into the sidecar and the
 * store's manifest.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';

import { runWorkerTask } from '../../../lib/worker-task.ts';
import { MANIFEST_JSON, ModelStoreError, readManifest } from '../../../model-store/store.ts';
import { ensureOnnxModel } from '../export.ts';
import { INT8_FILE, int8Staleness, ONNX_EXPORTER, QUANTIZER_VERSION, readInt8Sidecar } from '../../../model-store/derived-files.ts';
import { calibrationImagesSha256 } from './calibration-images.ts';
import { quantizationSettingsSchema, type FidelityReport, type QuantizationSettings } from '../../../model-store/fidelity-schema.ts';
import { DEFAULT_QUANTIZATION, type QuantizeStage } from './quantize.ts';

export async function int8Key(settings: QuantizationSettings): Promise<string> {
  const images = await calibrationImagesSha256();
  return createHash('sha256').update(JSON.stringify({ quantizer: QUANTIZER_VERSION, exporter: ONNX_EXPORTER, settings, images })).digest('hex');
}

export interface EnsureInt8Options {
  settings?: QuantizationSettings;
  onProgress?: (stage: QuantizeStage | 'exporting model.onnx', done: number, total: number) => void;
}

export interface EnsureInt8Result {
  path: string;
  quantized: boolean;
  ms: number;
  report: FidelityReport;
  /** Why it was (re-)made, when it was. */
  reason?: string;
}

const inFlight = new Map<string, Promise<EnsureInt8Result>>();

/**
 * Makes sure `modelDir/model.int8.onnx` is current for the store's weights and `settings`
 * (default DEFAULT_QUANTIZATION), exporting model.onnx first if needed and quantizing in a
 * worker thread (calibration holds a few hundred MB, returned when it exits).
 */
export function ensureInt8Model(modelDir: string, options: EnsureInt8Options = {}): Promise<EnsureInt8Result> {
  const key = path.resolve(modelDir);
  let pending = inFlight.get(key);
  if (!pending) {
    pending = ensure(modelDir, options).finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
  }
  return pending;
}

async function ensure(modelDir: string, options: EnsureInt8Options): Promise<EnsureInt8Result> {
  const started = performance.now();
  const settings = quantizationSettingsSchema.parse(options.settings ?? DEFAULT_QUANTIZATION);
  const file = path.join(modelDir, INT8_FILE);
  if (!(await readManifest(modelDir))) throw new ModelStoreError(modelDir, `no ${MANIFEST_JSON}; generate the model first (npm run model:generate)`);
  const key = await int8Key(settings);
  const stale = await int8Staleness(modelDir, key);
  if (stale === null) {
    const sidecar = (await readInt8Sidecar(modelDir))!;
    return { path: file, quantized: false, ms: performance.now() - started, report: sidecar.report };
  }
  options.onProgress?.('exporting model.onnx', 0, 1);
  await ensureOnnxModel(modelDir);
  await quantizeInWorker(modelDir, settings, options.onProgress);
  const still = await int8Staleness(modelDir, key);
  if (still !== null) throw new Error(`int8 quantization of ${modelDir} finished but the result is not current: ${still}`);
  const sidecar = (await readInt8Sidecar(modelDir))!;
  return { path: file, quantized: true, ms: performance.now() - started, report: sidecar.report, reason: stale };
}

export type QuantizeWorkerMessage =
  | { type: 'progress'; stage: QuantizeStage; done: number; total: number }
  | { type: 'done' }
  | { type: 'failed'; message: string };

function quantizeInWorker(modelDir: string, settings: QuantizationSettings, onProgress: EnsureInt8Options['onProgress']): Promise<void> {
  return runWorkerTask<{ stage: QuantizeStage; done: number; total: number }>(new URL('./quantize-worker.ts', import.meta.url), {
    what: `int8 quantization of ${modelDir}`,
    workerData: { modelDir, settings },
    onProgress: (progress) => onProgress?.(progress.stage, progress.done, progress.total),
  });
}
