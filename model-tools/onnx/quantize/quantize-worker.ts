/**
 * Worker-thread entry of `ensureInt8Model`: reads the store's model.onnx, quantizes it, writes
 * model.int8.onnx with its sidecar, and records the fidelity report in the manifest.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';

import { MANIFEST_JSON, ModelStoreError, readManifest, recordInt8InManifest } from '../../../model-store/store.ts';
import { INT8_FILE, ONNX_EXPORTER, ONNX_FILE, onnxStaleness, QUANTIZER_VERSION, type Int8Sidecar } from '../../../model-store/derived-files.ts';
import { decodeModel } from '../protobuf.ts';
import { writeWithSidecar } from '../../../model-store/sidecar.ts';
import type { QuantizationSettings } from '../../../model-store/fidelity-schema.ts';
import { int8Key, type QuantizeWorkerMessage } from './int8-model.ts';
import { quantizeModel } from './quantize.ts';

const port = parentPort!;
const post = (message: QuantizeWorkerMessage) => port.postMessage(message);

async function run({ modelDir, settings }: { modelDir: string; settings: QuantizationSettings }): Promise<void> {
  const manifest = await readManifest(modelDir);
  if (!manifest) throw new ModelStoreError(modelDir, `no ${MANIFEST_JSON}`);
  const stale = await onnxStaleness(modelDir);
  if (stale !== null) throw new ModelStoreError(modelDir, `${ONNX_FILE} is not current (${stale})`);
  const fp32 = await decodeModel(await readFile(path.join(modelDir, ONNX_FILE)));
  const result = await quantizeModel(fp32, settings, (stage, done, total) => post({ type: 'progress', stage, done, total }));
  const key = await int8Key(settings);
  const createdAt = new Date().toISOString();
  const sidecar: Int8Sidecar = {
    weightsSha256: manifest.weightsSha256,
    key,
    quantizer: QUANTIZER_VERSION,
    exporter: ONNX_EXPORTER,
    settings,
    createdAt,
    bytes: result.bytes.byteLength,
    report: result.report,
  };
  if ((await readManifest(modelDir))?.weightsSha256 !== manifest.weightsSha256) {
    throw new ModelStoreError(modelDir, 'the store changed during quantization; run it again');
  }
  await writeWithSidecar(path.join(modelDir, INT8_FILE), result.bytes, sidecar);
  await recordInt8InManifest(modelDir, manifest.weightsSha256, { file: INT8_FILE, key, quantizer: QUANTIZER_VERSION, settings, createdAt, report: result.report });
}

run(workerData as { modelDir: string; settings: QuantizationSettings }).then(
  () => post({ type: 'done' }),
  (error: unknown) => post({ type: 'failed', message: error instanceof Error ? error.message : String(error) }),
);
