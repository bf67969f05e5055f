/**
 * Getting the model's artifacts into the worker: from IndexedDB when this browser already has
 * the weights the hub names, else downloaded once from the hub and saved for next time.
 *
 * The hub names the weights by the SHA-256 of their bytes: all weight shards listed in
 * model.json, concatenated in order (model-store/store.ts weightsSha256()). The same hash is
 * computed here, with crypto.subtle, over what was downloaded or read back from IndexedDB, and
 * the model is used only when it matches.
 */
import type * as tfjs from '@tensorflow/tfjs';
import { weightDataBytes } from '../../../shared/model/weight-specs.ts';

type Tf = typeof import('@tensorflow/tfjs');
type ModelArtifacts = tfjs.io.ModelArtifacts;

/** IndexedDB keys are `indexeddb://resnet-hub-<sha256>`: one cached model per weights hash. */
export const CACHE_PREFIX = 'indexeddb://resnet-hub-';

export function cacheKey(sha256: string): string {
  return `${CACHE_PREFIX}${sha256}`;
}

/** The weights failed their integrity check: never use them. */
export class IntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntegrityError';
  }
}

export async function sha256Hex(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function joinWeightData(tf: Tf, data: tfjs.io.WeightData | undefined): Uint8Array<ArrayBuffer> {
  if (!data) return new Uint8Array(0);
  return new Uint8Array(Array.isArray(data) ? tf.io.CompositeArrayBuffer.join(data) : data);
}

/**
 * The cached artifacts for `sha256`, verified, or null when there is no (usable) copy. A copy
 * whose bytes no longer hash to its name is deleted.
 */
export async function loadFromCache(tf: Tf, sha256: string, warn: (message: string) => void): Promise<ModelArtifacts | null> {
  const key = cacheKey(sha256);
  let models: Record<string, unknown>;
  try {
    models = await tf.io.listModels();
  } catch (error) {
    warn(`cannot read the model cache (IndexedDB): ${errorMessage(error)}`);
    return null;
  }
  if (!(key in models)) return null;
  try {
    const [handler] = tf.io.getLoadHandlers(key);
    if (!handler?.load) return null;
    const artifacts = await handler.load();
    const data = joinWeightData(tf, artifacts.weightData);
    const actual = await sha256Hex(data);
    if (actual !== sha256) {
      warn(`the cached model's weights hash to ${actual.slice(0, 12)}…, not ${sha256.slice(0, 12)}…; deleting that copy`);
      await tf.io.removeModel(key).catch(() => {});
      return null;
    }
    return { ...artifacts, weightData: data.buffer };
  } catch (error) {
    warn(`cannot load the cached model: ${errorMessage(error)}`);
    await tf.io.removeModel(key).catch(() => {});
    return null;
  }
}

/** Saves the artifacts under `sha256` and deletes every other cached resnet-hub model. */
export async function saveToCache(tf: Tf, sha256: string, artifacts: ModelArtifacts, warn: (message: string) => void): Promise<void> {
  const key = cacheKey(sha256);
  try {
    const [handler] = tf.io.getSaveHandlers(key);
    if (!handler?.save) throw new Error('no IndexedDB save handler');
    await handler.save(artifacts);
  } catch (error) {
    // The model still works from memory; it will just be downloaded again next time.
    warn(`cannot keep the model in this browser's storage (${errorMessage(error)}); it will be downloaded again next time`);
    return;
  }
  try {
    for (const other of Object.keys(await tf.io.listModels())) {
      if (other.startsWith(CACHE_PREFIX) && other !== key) await tf.io.removeModel(other);
    }
  } catch (error) {
    warn(`cannot delete older cached models: ${errorMessage(error)}`);
  }
}

export interface DownloadProgress {
  (loaded: number, total: number): void;
}

/**
 * Downloads model.json and its shards from `modelUrl`, checks the SHA-256 of the weight data
 * against `sha256` (throws IntegrityError on mismatch) and returns the artifacts.
 */
export async function download(modelUrl: string, sha256: string, onProgress: DownloadProgress): Promise<ModelArtifacts> {
  const response = await fetch(modelUrl);
  if (!response.ok) throw new Error(`GET ${modelUrl}: HTTP ${response.status}`);
  const json = (await response.json()) as Partial<tfjs.io.ModelJSON>;
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new Error(`${modelUrl} is not a TF.js layers model`);
  }

  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  const total = weightDataBytes(weightSpecs);
  const data = new Uint8Array(total);
  let loaded = 0;
  onProgress(0, total);

  for (const group of json.weightsManifest) {
    for (const shardPath of group.paths) {
      const url = new URL(shardPath, modelUrl).href;
      const shard = await fetch(url);
      if (!shard.ok || !shard.body) throw new Error(`GET ${url}: HTTP ${shard.status}`);
      const reader = shard.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (loaded + value.byteLength > total) {
          await reader.cancel().catch(() => {});
          throw new IntegrityError(`the weight shards hold more than the ${total} bytes model.json describes`);
        }
        data.set(value, loaded);
        loaded += value.byteLength;
        onProgress(loaded, total);
      }
    }
  }
  if (loaded !== total) throw new IntegrityError(`the weight shards hold ${loaded} bytes, model.json describes ${total} (truncated?)`);

  const actual = await sha256Hex(data);
  if (actual !== sha256) {
    throw new IntegrityError(`the downloaded weights have SHA-256 ${actual}, but the hub says ${sha256}; refusing to use them`);
  }
  return {
    modelTopology: json.modelTopology,
    weightSpecs,
    weightData: data.buffer,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy ?? undefined,
  };
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
