/**
 * The files a store derives from its weights: model.onnx (for the onnx engine) and
 * model.int8.onnx (for --precision int8), each with a JSON sidecar naming what it was made from.
 * This module says when one is current: the hub refuses a stale file, the model tools re-make it.
 * The version stamps live here, with the staleness rule they feed: the tools that write the
 * files stamp them with these, and bump them when their output changes.
 */
import path from 'node:path';
import { z } from 'zod';

import { fidelityReportSchema, quantizationSettingsSchema } from './fidelity-schema.ts';
import { fileSize, readSidecar } from './sidecar.ts';
import { MANIFEST_JSON, readManifest } from './store.ts';

export const ONNX_FILE = 'model.onnx';
export const ONNX_SIDECAR = 'model.onnx.json';
/** The graph's input and output names, as the exporter writes them and the engine feeds them. */
export const ONNX_INPUT = 'input';
export const ONNX_OUTPUT = 'probabilities';
/**
 * Recorded in the sidecar; bump it whenever the exporter's output changes, so that every
 * existing model.onnx is re-exported.
 */
export const ONNX_EXPORTER = 'resnet-hub onnx-export v1';

export const INT8_FILE = 'model.int8.onnx';
export const INT8_SIDECAR = 'model.int8.onnx.json';
/** Recorded in the int8 sidecar; bump it whenever the quantizer's output changes. */
export const QUANTIZER_VERSION = 'resnet-hub quantize v2';

export const onnxSidecarSchema = z.object({
  weightsSha256: z.string(),
  exporter: z.string(),
  opset: z.number().int(),
  createdAt: z.string(),
  /** Size of the .onnx file it describes: a replaced or truncated file no longer matches. */
  bytes: z.number().int().nonnegative(),
});
export type OnnxSidecar = z.infer<typeof onnxSidecarSchema>;

export const int8SidecarSchema = z.object({
  weightsSha256: z.string(),
  /** SHA-256 over quantizer, exporter, settings and calibration images (the tools' int8Key). */
  key: z.string(),
  quantizer: z.string(),
  exporter: z.string(),
  settings: quantizationSettingsSchema,
  createdAt: z.string(),
  bytes: z.number().int().nonnegative(),
  report: fidelityReportSchema,
});
export type Int8Sidecar = z.infer<typeof int8SidecarSchema>;

interface DerivedFile<T extends { weightsSha256: string; bytes: number }> {
  file: string;
  sidecar: string;
  schema: z.ZodType<T>;
  /** How the file came from the weights, for the message: "exported", "made". */
  madeVerb: string;
  /** Further reasons it is stale, checked once the weights and the size match. */
  versionMismatch: (sidecar: T) => string | null;
}

/** Why `spec.file` in `modelDir` cannot be used as is, or null when it is current. */
async function derivedFileStaleness<T extends { weightsSha256: string; bytes: number }>(modelDir: string, spec: DerivedFile<T>): Promise<string | null> {
  const manifest = await readManifest(modelDir);
  if (!manifest) return `no ${MANIFEST_JSON} in ${modelDir}`;
  const file = path.join(modelDir, spec.file);
  const size = await fileSize(file);
  if (size === null) return `${spec.file} is missing`;
  const sidecar = await readSidecar(file, spec.schema);
  if (!sidecar) return `${spec.sidecar} is missing or invalid`;
  if (sidecar.weightsSha256 !== manifest.weightsSha256) {
    return `${spec.file} was ${spec.madeVerb} from other weights (${sidecar.weightsSha256.slice(0, 12)}…, the store has ${manifest.weightsSha256.slice(0, 12)}…)`;
  }
  const version = spec.versionMismatch(sidecar);
  if (version !== null) return version;
  if (sidecar.bytes !== size) return `${spec.file} is ${size} bytes, its sidecar says ${sidecar.bytes}`;
  return null;
}

/** Why the store's model.onnx cannot be used as is, or null when it is current. */
export function onnxStaleness(modelDir: string): Promise<string | null> {
  return derivedFileStaleness(modelDir, {
    file: ONNX_FILE,
    sidecar: ONNX_SIDECAR,
    schema: onnxSidecarSchema,
    madeVerb: 'exported',
    versionMismatch: (sidecar) => (sidecar.exporter !== ONNX_EXPORTER ? `${ONNX_FILE} was made by '${sidecar.exporter}', not the current '${ONNX_EXPORTER}'` : null),
  });
}

/**
 * Why the store's int8 model cannot be used as is, or null when it is current. With `key` (the
 * tools' int8Key of the settings wanted), a file made with other settings or calibration images
 * is stale too; without, any settings will do (what an engine checks: the hub ensured the right ones).
 */
export async function int8Staleness(modelDir: string, key?: string): Promise<string | null> {
  const stale = await derivedFileStaleness(modelDir, {
    file: INT8_FILE,
    sidecar: INT8_SIDECAR,
    schema: int8SidecarSchema,
    madeVerb: 'made',
    versionMismatch: (sidecar) => {
      if (sidecar.quantizer !== QUANTIZER_VERSION) return `${INT8_FILE} was made by '${sidecar.quantizer}', not the current '${QUANTIZER_VERSION}'`;
      if (sidecar.exporter !== ONNX_EXPORTER) return `${INT8_FILE} was made from a model.onnx of '${sidecar.exporter}', not the current '${ONNX_EXPORTER}'`;
      return null;
    },
  });
  if (stale !== null || key === undefined) return stale;
  const sidecar = await readInt8Sidecar(modelDir);
  return sidecar?.key === key ? null : `${INT8_FILE} was made with other quantization settings or calibration images`;
}

export async function readInt8Sidecar(modelDir: string): Promise<Int8Sidecar | null> {
  return readSidecar(path.join(modelDir, INT8_FILE), int8SidecarSchema);
}
