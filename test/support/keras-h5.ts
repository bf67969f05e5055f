/**
 * Builds Keras-layout HDF5 files for the import tests: the weights are chosen here (in TS) and
 * written by Python's h5py through keras_h5.py, the way Keras writes them, so the importer is
 * tested against files it did not write itself.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { LayersModel } from '@tensorflow/tfjs';
import { loadTfjs } from '../../lib/tfjs-runtime.ts';
import { loadLayersModelFromStore } from '../../model-store/store.ts';

const run = promisify(execFile);
export const PYTHON = '/usr/bin/python3';
const WRITER = path.join(path.dirname(new URL(import.meta.url).pathname), 'keras_h5.py');

export interface H5Weight {
  /** As Keras names it in the file, e.g. `conv1_conv/kernel:0`. */
  name: string;
  shape: number[];
  values: Float32Array;
}

export interface H5Layer {
  name: string;
  /** Empty for layers without weights (activations, pads, pools, add), as Keras lists them. */
  weights: H5Weight[];
}

export interface WriteH5Options {
  layout?: 'weights' | 'full-model';
  /** Name lists as fixed-length byte strings (what Keras writes) or as str (variable-length). */
  strings?: 'bytes' | 'str';
}

export async function writeKerasH5(file: string, layers: readonly H5Layer[], options: WriteH5Options = {}): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'keras-h5-spec-'));
  try {
    let offset = 0;
    const chunks: Uint8Array[] = [];
    const spec = {
      layout: options.layout ?? 'weights',
      strings: options.strings ?? 'bytes',
      layers: layers.map((layer) => ({
        name: layer.name,
        weight_names: layer.weights.map((w) => w.name),
        weights: layer.weights.map((w) => {
          const entry = { shape: w.shape, offset };
          chunks.push(new Uint8Array(w.values.buffer, w.values.byteOffset, w.values.byteLength));
          offset += w.values.byteLength;
          return entry;
        }),
      })),
    };
    await writeFile(path.join(dir, 'spec.json'), JSON.stringify(spec));
    await writeFile(path.join(dir, 'weights.bin'), Buffer.concat(chunks));
    await run(PYTHON, [WRITER, path.join(dir, 'spec.json'), path.join(dir, 'weights.bin'), file], { maxBuffer: 1 << 20 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `conv1_conv/kernel` → `kernel`. */
export function ownName(originalName: string): string {
  return originalName.split('/').at(-1)!;
}

/**
 * Every layer of `model` in Keras' file form (all layers listed, weights named `layer/own:0`),
 * with values from `values(layer, weightIndex, shape)`.
 */
export function kerasLayersOf(
  model: LayersModel,
  values: (layer: string, weightIndex: number, shape: number[]) => Float32Array,
): H5Layer[] {
  return model.layers.map((layer) => ({
    name: layer.name,
    weights: layer.weights.map((w, i) => {
      const shape = w.shape as number[];
      return { name: `${layer.name}/${ownName(w.originalName)}:0`, shape, values: values(layer.name, i, shape) };
    }),
  }));
}

/**
 * Known, distinct values for every weight: a xorshift32 stream seeded by the layer's name and
 * the weight's index, in [-0.5, 0.5). Any two tensors differ, so a weight landing in the wrong
 * layer (or the wrong slot) changes a checksum.
 */
export function distinctValues(layer: string, weightIndex: number, shape: number[]): Float32Array {
  const count = shape.reduce((a, b) => a * b, 1);
  let state = (createHash('sha256').update(`${layer}#${weightIndex}`).digest().readUInt32LE(0) | 1) >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[i] = state / 2 ** 32 - 0.5;
  }
  return out;
}

export function checksum(values: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength)).digest('hex');
}

/**
 * The legacy name of a keras-applications ResNet layer, spelled out independently of
 * model-tools/keras/legacy-names.ts (which it is meant to check): `conv{S}_block{B}_{i}_{conv,bn}`
 * → `{res,bn}{S}{letter B}_branch{1,2a,2b,2c}`.
 */
export function legacyNameForTest(name: string): string {
  const fixed: Record<string, string> = { conv1_conv: 'conv1', conv1_bn: 'bn_conv1', predictions: 'fc1000' };
  if (fixed[name]) return fixed[name];
  const m = /^conv(\d)_block(\d)_(\d)_(conv|bn)$/.exec(name);
  if (!m) return name;
  const letter = 'abcdef'[Number(m[2]) - 1];
  const branch = ['1', '2a', '2b', '2c'][Number(m[3])];
  return `${m[4] === 'conv' ? 'res' : 'bn'}${m[1]}${letter}_branch${branch}`;
}

/**
 * Other weights for a model swap: those of the store at `modelDir` with the classifier's kernel
 * scaled by `factor`, written as a Keras file (so they import as "imagenet"). Answers differ
 * visibly from the store's, and stay as varied.
 */
export async function writeSharperClassifierH5(modelDir: string, file: string, factor = 1.4): Promise<void> {
  const tf = await loadTfjs('cpu');
  const source = await loadLayersModelFromStore(tf, modelDir);
  try {
    const layers = kerasLayersOf(source, (layer, i) => {
      const values = (source.getLayer(layer).weights[i].read().dataSync() as Float32Array).slice();
      if (layer === 'predictions' && i === 0) for (let j = 0; j < values.length; j++) values[j] *= factor;
      return values;
    });
    await writeKerasH5(file, layers);
  } finally {
    source.dispose();
  }
}
