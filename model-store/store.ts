/**
 * The on-disk model store: one folder (default models/resnet50/, git-ignored) with
 *   model.json                   standard TF.js layers-model JSON (topology + weightsManifest),
 *   group1-shardNofM.bin         weight data in 4 MiB shards, as tfjs-converter writes them,
 *   manifest.json                what the weights are (untrained/imagenet, origin, SHA-256).
 * model.json + shards are exactly what `tf.loadLayersModel('http://host/.../model.json')` loads
 * in a browser, so the folder can be served as is.
 *
 * Writes are atomic at the folder level: everything goes into a fresh temp folder beside the
 * store, which is renamed into place only once complete. A crash mid-write leaves the previous
 * store untouched (plus a hidden `.name.tmp-*` folder that readers ignore).
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { LayersModel, io } from '@tensorflow/tfjs';
import { swapFolderIntoPlace } from '../lib/swap-folder.ts';
import { writeFileAtomic } from '../lib/write-file-atomic.ts';
import { weightDataBytes } from '../shared/model/weight-specs.ts';
import { int8ManifestSchema, type Int8ManifestEntry } from './fidelity-schema.ts';

type Tf = typeof import('@tensorflow/tfjs');

export const DEFAULT_MODEL_DIR = 'models/resnet50';
export const MODEL_JSON = 'model.json';
export const MANIFEST_JSON = 'manifest.json';
/** tfjs-converter's default shard size. */
export const SHARD_BYTES = 4 * 1024 * 1024;

const manifestSchema = z.object({
  formatVersion: z.literal(1),
  name: z.enum(['resnet50', 'tiny-resnet']),
  weights: z.enum(['untrained', 'imagenet']),
  /** SHA-256 (hex) of the concatenated weight data, i.e. of the shards in order. */
  weightsSha256: z.string().regex(/^[0-9a-f]{64}$/),
  source: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('generated'), seed: z.number().int().nonnegative(), generator: z.string() }),
    z.object({
      kind: z.literal('keras-h5'),
      file: z.string().optional(),
      url: z.string().optional(),
      md5: z.string().optional(),
      /** SHA-256 (hex) of the .h5 file itself, so the store names exactly which file it came from. */
      sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
      /** Which of Keras' two ResNet50 layer namings the file used (legacy: `res2a_branch2a`, `fc1000`). */
      naming: z.enum(['keras-applications', 'legacy']).optional(),
      /** Weights-only file (`save_weights`) or a full model file (weights under `model_weights`). */
      layout: z.enum(['weights', 'full-model']).optional(),
    }),
  ]),
  createdAt: z.iso.datetime(),
  inputShape: z.tuple([z.literal(224), z.literal(224), z.literal(3)]),
  classes: z.literal(1000),
  /** The int8 model derived from these weights, with its fidelity report (see onnx/quantize/). */
  int8: int8ManifestSchema.optional(),
});

export type ModelManifest = z.infer<typeof manifestSchema>;
export type ManifestInput = Omit<ModelManifest, 'weightsSha256'>;

/** The store exists but cannot be used (corrupt manifest, missing or truncated shards, hash mismatch). */
export class ModelStoreError extends Error {
  constructor(
    readonly dir: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`model store ${dir}: ${message}`, options);
    this.name = 'ModelStoreError';
  }
}

function isNotFound(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'ENOENT';
}

/** The store's manifest, or null when the store (or its manifest) does not exist. */
export async function readManifest(dir: string): Promise<ModelManifest | null> {
  let text: string;
  try {
    text = await readFile(path.join(dir, MANIFEST_JSON), 'utf8');
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelStoreError(dir, `${MANIFEST_JSON} is not valid JSON (${(error as Error).message}); delete the folder or regenerate it with --force`, {
      cause: error,
    });
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    throw new ModelStoreError(dir, `${MANIFEST_JSON} is invalid: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/**
 * Records (or, with undefined, removes) the store's int8 model in its manifest, atomically.
 * Refused if the weights changed meanwhile: the entry describes a model made from `weightsSha256`.
 */
export async function recordInt8InManifest(dir: string, weightsSha256: string, entry: Int8ManifestEntry | undefined): Promise<void> {
  const manifest = await readManifest(dir);
  if (!manifest) throw new ModelStoreError(dir, `no ${MANIFEST_JSON}`);
  if (manifest.weightsSha256 !== weightsSha256) throw new ModelStoreError(dir, 'the weights changed while the int8 model was made; run it again');
  const { int8: _previous, ...rest } = manifest;
  const next = manifestSchema.parse(entry ? { ...rest, int8: entry } : rest);
  await writeFileAtomic(path.join(dir, MANIFEST_JSON), JSON.stringify(next, null, 2) + '\n');
}

export interface WriteOptions {
  /** Bytes of weight data written so far, out of the total (for progress bars). */
  onProgress?: (writtenBytes: number, totalBytes: number) => void;
  /**
   * Runs on the complete temp folder (manifest included) before it replaces the store, so that
   * derived files (model.onnx) arrive together with the weights they derive from. If it throws,
   * the temp folder is removed and the existing store stays as it was.
   */
  beforeSwap?: (folder: string, manifest: ModelManifest) => Promise<void>;
}

/**
 * Saves `model` as a complete store at `dir`, replacing any existing store only once the new
 * one is fully written and synced. Returns the manifest written (with the weights' hash).
 */
export async function writeModelStore(
  model: LayersModel,
  dir: string,
  manifest: ManifestInput,
  options: WriteOptions = {},
): Promise<ModelManifest> {
  const artifacts = await captureArtifacts(model);
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  const base = path.basename(target);
  await mkdir(parent, { recursive: true });
  const temp = await mkdtemp(path.join(parent, `.${base}.tmp-`));
  try {
    await chmod(temp, 0o755); // mkdtemp makes it private; the store is meant to be served as is
    const full = await writeStoreFiles(temp, artifacts, manifest, options);
    await options.beforeSwap?.(temp, full);
    await swapFolderIntoPlace(temp, target);
    return full;
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

/** Runs model.save() with an in-memory handler to get the topology, weight specs and data. */
async function captureArtifacts(model: LayersModel): Promise<io.ModelArtifacts> {
  let captured: io.ModelArtifacts | undefined;
  const handler: io.IOHandler = {
    save: async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    },
  };
  await model.save(handler);
  if (!captured?.modelTopology || !captured.weightSpecs || !captured.weightData) {
    throw new Error('model.save() produced no topology or weights');
  }
  return captured;
}

function concatBytes(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

function concatWeightData(data: io.WeightData): Uint8Array {
  return Array.isArray(data) ? concatBytes(data.map((b) => new Uint8Array(b))) : new Uint8Array(data);
}

async function writeFileSynced(file: string, data: string | Uint8Array): Promise<void> {
  const handle = await open(file, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeStoreFiles(
  folder: string,
  artifacts: io.ModelArtifacts,
  manifestInput: ManifestInput,
  options: WriteOptions,
): Promise<ModelManifest> {
  const weightSpecs = artifacts.weightSpecs ?? [];
  const data = concatWeightData(artifacts.weightData ?? []);
  const expected = weightDataBytes(weightSpecs);
  if (data.byteLength !== expected) {
    throw new Error(`weight data is ${data.byteLength} bytes but the specs describe ${expected}`);
  }
  // Non-finite weights make a store that loads fine and answers garbage: refuse them. All our
  // weights are float32 (4-byte aligned shard boundaries), so each shard is checked as float32.
  const allFloat32 = weightSpecs.every((s) => s.dtype === 'float32' && !s.quantization);

  const shardCount = Math.max(1, Math.ceil(data.byteLength / SHARD_BYTES));
  const paths: string[] = [];
  const hash = createHash('sha256');
  for (let i = 0; i < shardCount; i++) {
    const shard = data.subarray(i * SHARD_BYTES, Math.min(data.byteLength, (i + 1) * SHARD_BYTES));
    if (allFloat32) assertFinite(shard, i);
    const name = `group1-shard${i + 1}of${shardCount}.bin`;
    await writeFileSynced(path.join(folder, name), shard);
    hash.update(shard);
    paths.push(name);
    options.onProgress?.(i * SHARD_BYTES + shard.byteLength, data.byteLength);
  }

  const modelJson: io.ModelJSON = {
    format: 'layers-model',
    generatedBy: artifacts.generatedBy ?? 'resnet-hub',
    convertedBy: artifacts.convertedBy ?? null,
    modelTopology: artifacts.modelTopology as {},
    weightsManifest: [{ paths, weights: weightSpecs }],
  };
  await writeFileSynced(path.join(folder, MODEL_JSON), JSON.stringify(modelJson));

  const manifest = manifestSchema.parse({ ...manifestInput, weightsSha256: hash.digest('hex') });
  // Written last: a folder without a manifest is never a store.
  await writeFileSynced(path.join(folder, MANIFEST_JSON), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

function assertFinite(shard: Uint8Array, index: number): void {
  const floats = new Float32Array(shard.buffer, shard.byteOffset, shard.byteLength / 4);
  for (let j = 0; j < floats.length; j++) {
    if (!Number.isFinite(floats[j])) {
      throw new Error(`weight shard ${index + 1} contains a non-finite value (${floats[j]}) at float ${j}; refusing to store it`);
    }
  }
}

export interface LoadOptions {
  /** Check the weights against the manifest's SHA-256 (≈0.3 s for ResNet50). Default true. */
  verify?: boolean;
}

/** Reads model.json and its shards from disk and builds the LayersModel (no fetch, no tfjs-node). */
export async function loadLayersModelFromStore(tf: Tf, dir: string, options: LoadOptions = {}): Promise<LayersModel> {
  const manifest = await readManifest(dir);
  if (!manifest) throw new ModelStoreError(dir, `no ${MANIFEST_JSON}; generate the model first (npm run model:generate)`);

  let modelJson: io.ModelJSON;
  try {
    modelJson = JSON.parse(await readFile(path.join(dir, MODEL_JSON), 'utf8')) as io.ModelJSON;
  } catch (error) {
    throw new ModelStoreError(dir, `cannot read ${MODEL_JSON}: ${(error as Error).message}`, { cause: error });
  }
  if (!modelJson.modelTopology || !Array.isArray(modelJson.weightsManifest)) {
    throw new ModelStoreError(dir, `${MODEL_JSON} is not a TF.js layers model`);
  }

  const weightSpecs: io.WeightsManifestEntry[] = [];
  const chunks: Uint8Array[] = [];
  for (const group of modelJson.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) {
      // Shard paths are relative to model.json; refuse anything that would leave the folder.
      if (path.basename(p) !== p) throw new ModelStoreError(dir, `unexpected shard path ${JSON.stringify(p)}`);
      try {
        chunks.push(await readFile(path.join(dir, p)));
      } catch (error) {
        throw new ModelStoreError(dir, `cannot read weight shard ${p}: ${(error as Error).message}`, { cause: error });
      }
    }
  }
  const data = concatBytes(chunks); // a fresh buffer: exactly the weights, offset 0
  const expected = weightDataBytes(weightSpecs);
  if (data.byteLength !== expected) {
    throw new ModelStoreError(dir, `weight shards hold ${data.byteLength} bytes, model.json expects ${expected} (truncated store?)`);
  }
  if (options.verify ?? true) {
    const actual = createHash('sha256').update(data).digest('hex');
    if (actual !== manifest.weightsSha256) {
      throw new ModelStoreError(dir, `weights SHA-256 ${actual} does not match the manifest's ${manifest.weightsSha256}`);
    }
  }

  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs,
      weightData: data.buffer as ArrayBuffer,
      format: modelJson.format,
      generatedBy: modelJson.generatedBy,
      convertedBy: modelJson.convertedBy,
    }),
  );
}

/** SHA-256 of a model's weights exactly as writeModelStore would record it, without writing. */
export async function weightsSha256(model: LayersModel): Promise<string> {
  const artifacts = await captureArtifacts(model);
  return createHash('sha256').update(concatWeightData(artifacts.weightData ?? [])).digest('hex');
}
