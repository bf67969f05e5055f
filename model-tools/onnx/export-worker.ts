/**
 * Worker-thread entry of `ensureOnnxModel`: loads the store on tfjs' cpu backend (weights
 * only, no compute), runs the export passes and writes model.onnx with its sidecar.
 */
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';

import { loadTfjs } from '../../lib/tfjs-runtime.ts';
import { loadLayersModelFromStore, MANIFEST_JSON, ModelStoreError, readManifest } from '../../model-store/store.ts';
import { ONNX_FILE } from '../../model-store/derived-files.ts';
import { buildOnnxGraph, writeOnnx, type ExportWorkerResult } from './export.ts';
import type { Model } from './ir.ts';

async function run(modelDir: string): Promise<ExportWorkerResult> {
  const before = await readManifest(modelDir);
  if (!before) throw new ModelStoreError(modelDir, `no ${MANIFEST_JSON}`);
  const tf = await loadTfjs('cpu');
  const model = await loadLayersModelFromStore(tf, modelDir); // verifies the shards against the manifest
  let graph: Model;
  try {
    graph = buildOnnxGraph(model, { weightsSha256: before.weightsSha256 });
  } catch (error) {
    model.dispose();
    throw error;
  }
  const after = await readManifest(modelDir);
  if (after?.weightsSha256 !== before.weightsSha256) {
    model.dispose();
    throw new ModelStoreError(modelDir, 'the store changed during the ONNX export; run it again');
  }
  // The folded weights are copies, except Dense's kernel, which still points into tfjs memory:
  // so the model is released only once the file is written.
  const result = await writeOnnx(graph, path.join(modelDir, ONNX_FILE), before.weightsSha256);
  model.dispose();
  return { type: 'done', bytes: result.bytes };
}

const port = parentPort!;
run((workerData as { modelDir: string }).modelDir).then(
  (result) => port.postMessage(result satisfies ExportWorkerResult),
  (error: unknown) => port.postMessage({ type: 'failed', message: error instanceof Error ? error.message : String(error) } satisfies ExportWorkerResult),
);
