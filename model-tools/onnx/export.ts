/**
 * TF.js layers model → model.onnx, for the `onnx` engine: the pipeline of passes
 *   layers-to-graph → fold-batch-norm → float32-constants → protobuf
 * and the store's model.onnx lifecycle. Next to the store's model.json it writes model.onnx plus
 * a sidecar model.onnx.json naming the weights (manifest SHA-256) and exporter version it was
 * made from; `ensureOnnxModel` re-exports whenever they no longer match, so a stale ONNX file is
 * never served.
 */
import path from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs';

import { runWorkerTask } from '../../lib/worker-task.ts';
import { MANIFEST_JSON, ModelStoreError, readManifest } from '../../model-store/store.ts';
import { foldBatchNorm } from './fold-batch-norm.ts';
import { roundConstantsToFloat32 } from './float32-constants.ts';
import type { Model } from './ir.ts';
import { layersToGraph, ONNX_OPSET, type BuildOptions } from './layers-to-graph.ts';
import { encodeModel } from './protobuf.ts';
import { writeWithSidecar } from '../../model-store/sidecar.ts';
import { ONNX_EXPORTER, ONNX_FILE, onnxStaleness, type OnnxSidecar } from '../../model-store/derived-files.ts';

export interface OnnxExportResult {
  path: string;
  bytes: number;
  sidecar: OnnxSidecar;
}

/** The float32 ONNX graph of `model`, every pass but serialisation applied. */
export function buildOnnxGraph(model: LayersModel, options: BuildOptions): Model {
  const graph = layersToGraph(model, options);
  foldBatchNorm(graph);
  roundConstantsToFloat32(graph);
  return graph;
}

export async function writeOnnx(graph: Model, outFile: string, weightsSha256: string): Promise<OnnxExportResult> {
  const bytes = await encodeModel(graph);
  const sidecar: OnnxSidecar = { weightsSha256, exporter: ONNX_EXPORTER, opset: ONNX_OPSET, createdAt: new Date().toISOString(), bytes: bytes.byteLength };
  await writeWithSidecar(outFile, bytes, sidecar);
  return { path: outFile, bytes: bytes.byteLength, sidecar };
}

/**
 * Writes `model` as ONNX to `outFile` (atomically: temp file + rename), then the sidecar
 * `${outFile}.json`. Throws OnnxExportError, naming the layer, for anything it cannot translate;
 * nothing is written then.
 */
export async function exportOnnx(model: LayersModel, outFile: string, options: BuildOptions): Promise<OnnxExportResult> {
  return writeOnnx(buildOnnxGraph(model, options), outFile, options.weightsSha256);
}

export async function onnxIsCurrent(modelDir: string): Promise<boolean> {
  return (await onnxStaleness(modelDir)) === null;
}

const inFlight = new Map<string, Promise<{ path: string; exported: boolean; ms: number }>>();

/**
 * Makes sure `modelDir/model.onnx` matches the store's weights and this exporter, exporting it
 * when missing or stale. The export runs in a worker thread: it needs tfjs (whose backend is a
 * per-thread singleton the caller may be using), holds a few hundred MB that are all returned
 * when the worker exits, and keeps the caller's event loop responsive meanwhile.
 */
export function ensureOnnxModel(modelDir: string): Promise<{ path: string; exported: boolean; ms: number }> {
  const key = path.resolve(modelDir);
  let pending = inFlight.get(key);
  if (!pending) {
    pending = ensure(modelDir).finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
  }
  return pending;
}

async function ensure(modelDir: string): Promise<{ path: string; exported: boolean; ms: number }> {
  const started = performance.now();
  const file = path.join(modelDir, ONNX_FILE);
  if (!(await readManifest(modelDir))) {
    throw new ModelStoreError(modelDir, `no ${MANIFEST_JSON}; generate the model first (npm run model:generate)`);
  }
  if ((await onnxStaleness(modelDir)) === null) return { path: file, exported: false, ms: performance.now() - started };
  await exportInWorker(modelDir);
  const still = await onnxStaleness(modelDir);
  if (still !== null) throw new Error(`ONNX export of ${modelDir} finished but the result is not current: ${still}`);
  return { path: file, exported: true, ms: performance.now() - started };
}

export type ExportWorkerResult = { type: 'done'; bytes: number } | { type: 'failed'; message: string };

function exportInWorker(modelDir: string): Promise<void> {
  return runWorkerTask(new URL('./export-worker.ts', import.meta.url), { what: `ONNX export of ${modelDir}`, workerData: { modelDir } });
}
