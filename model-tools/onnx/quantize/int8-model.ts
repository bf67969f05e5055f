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
import { z } from 'zod';

import { runWorkerTask } from '../../../lib/worker-task.ts';
import { MANIFEST_JSON, ModelStoreError, readManifest } from '../../../model-store/store.ts';
import { ensureOnnxModel } from '../export.ts';
import { ONNX_EXPORTER } from '../layers-to-graph.ts';
import { fileSize, readSidecar } from '../../../model-store/sidecar.ts';
import { calibrationImagesSha256 } from './calibration-images.ts';
import { fidelityReportSchema, quantizationSettingsSchema, type FidelityReport, type QuantizationSettings } from '../../../model-store/fidelity-schema.ts';
import { DEFAULT_QUANTIZATION, QUANTIZER_VERSION, type QuantizeStage } from './quantize.ts';

export const INT8_FILE = 'model.int8.onnx';
export const INT8_SIDECAR = 'model.int8.onnx.json';

export const int8SidecarSchema = z.object({
  weightsSha256: z.string(),
  /** SHA-256 over quantizer, exporter, settings and calibration images: see int8Key. */
  key: z.string(),
  quantizer: z.string(),
  exporter: z.string(),
  settings: quantizationSettingsSchema,
  createdAt: z.string(),
  bytes: z.number().int().nonnegative(),
  report: fidelityReportSchema,
});
export type Int8Sidecar = z.infer<typeof int8SidecarSchema>;

export async function int8Key(settings: QuantizationSettings): Promise<string> {
  const images = await calibrationImagesSha256();
  return createHash('sha256').update(JSON.stringify({ quantizer: QUANTIZER_VERSION, exporter: ONNX_EXPORTER, settings, images })).digest('hex');
}

/**
 * Why the store's int8 model cannot be used as is, or null when it is current. Without
 * `settings`, any settings will do (what an engine checks: the hub ensured the right ones).
 */
export async function int8Staleness(modelDir: string, settings?: QuantizationSettings): Promise<string | null> {
  const manifest = await readManifest(modelDir);
  if (!manifest) return `no ${MANIFEST_JSON} in ${modelDir}`;
  const file = path.join(modelDir, INT8_FILE);
  const size = await fileSize(file);
  if (size === null) return `${INT8_FILE} is missing`;
  const sidecar = await readSidecar(file, int8SidecarSchema);
  if (!sidecar) return `${INT8_SIDECAR} is missing or invalid`;
  if (sidecar.weightsSha256 !== manifest.weightsSha256) return `${INT8_FILE} was made from other weights (${sidecar.weightsSha256.slice(0, 12)}…, the store has ${manifest.weightsSha256.slice(0, 12)}…)`;
  if (sidecar.quantizer !== QUANTIZER_VERSION) return `${INT8_FILE} was made by '${sidecar.quantizer}', not the current '${QUANTIZER_VERSION}'`;
  if (sidecar.exporter !== ONNX_EXPORTER) return `${INT8_FILE} was made from a model.onnx of '${sidecar.exporter}', not the current '${ONNX_EXPORTER}'`;
  if (sidecar.bytes !== size) return `${INT8_FILE} is ${size} bytes, its sidecar says ${sidecar.bytes}`;
  if (settings && sidecar.key !== (await int8Key(settings))) return `${INT8_FILE} was made with other quantization settings or calibration images`;
  return null;
}

export async function readInt8Sidecar(modelDir: string): Promise<Int8Sidecar | null> {
  return readSidecar(path.join(modelDir, INT8_FILE), int8SidecarSchema);
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
  const stale = await int8Staleness(modelDir, settings);
  if (stale === null) {
    const sidecar = (await readInt8Sidecar(modelDir))!;
    return { path: file, quantized: false, ms: performance.now() - started, report: sidecar.report };
  }
  options.onProgress?.('exporting model.onnx', 0, 1);
  await ensureOnnxModel(modelDir);
  await quantizeInWorker(modelDir, settings, options.onProgress);
  const still = await int8Staleness(modelDir, settings);
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
