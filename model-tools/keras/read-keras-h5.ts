/**
 * Keras HDF5 weights file → a plain map of layer name → its weights (name, shape, float32
 * values), in the file's order. Knows the Keras layout (see below) and nothing about ResNet50.
 *
 * Keras' layout (keras/saving/hdf5_format.py, `save_weights_to_hdf5_group`):
 *  - a weights-only file (`model.save_weights('x.h5')`) has the root attribute `layer_names`;
 *    a full model file (`model.save('x.h5')`) has the same structure under the group
 *    `model_weights` (next to the model config and maybe optimizer state, ignored here);
 *  - one group per layer, with the attribute `weight_names` (e.g. `conv1_conv/kernel:0`);
 *  - each weight is the dataset at that name *inside the layer group*, so
 *    `/conv1_conv/conv1_conv/kernel:0` (Keras 2), or `/conv1/conv1_W:0` (Keras 1).
 * h5py writes the name lists as arrays of fixed-length byte strings (or, from str, variable-length
 * strings); both arrive here as strings, and raw bytes are decoded too, to be safe.
 *
 * Runs in whichever thread calls it; h5wasm's heap grows to the largest dataset (≈9 MB for
 * ResNet50) and every dataset is copied out of it as it is read.
 */
import path from 'node:path';
import h5wasm from 'h5wasm/node';
import type { Dataset, Group } from 'h5wasm/node';
import { KerasImportError } from './errors.ts';

export interface KerasWeight {
  /** As the file names it, e.g. `conv1_conv/kernel:0`. */
  name: string;
  shape: number[];
  values: Float32Array;
}

export interface KerasWeightsFile {
  layout: 'weights' | 'full-model';
  /** Every layer the file lists, in order, weights or not. */
  layerNames: string[];
  /** Only the layers that have weights, in file order. */
  layers: Map<string, KerasWeight[]>;
}

/** h5wasm's module has functions its type declarations do not list. */
interface H5ModuleExtras {
  activate_throwing_error_handler?: () => number;
}

let ready: Promise<void> | undefined;

/**
 * Loads h5wasm once per thread and makes HDF5 errors throw (with the library's diagnostics as
 * the message) instead of printing a stack of `HDF5-DIAG` lines on stderr and failing silently.
 */
function loadH5wasm(): Promise<void> {
  ready ??= h5wasm.ready.then((module) => {
    (module as unknown as H5ModuleExtras).activate_throwing_error_handler?.();
  });
  return ready;
}

/**
 * Reads every layer's weights. `onProgress` counts listed layers. Throws KerasImportError for
 * anything that is not a readable Keras weights file; call checkHdf5File first for clear
 * messages about non-HDF5 and truncated files.
 */
export async function readKerasH5(file: string, onProgress?: (done: number, total: number) => void): Promise<KerasWeightsFile> {
  await loadH5wasm();
  let h5: InstanceType<typeof h5wasm.File>;
  try {
    // NODERAWFS: h5wasm reads the host file system, relative to the process' cwd.
    h5 = new h5wasm.File(path.resolve(file), 'r');
  } catch (error) {
    throw new KerasImportError(`${file}: the HDF5 library cannot open it: ${hdf5Reason(error)}`, { cause: error });
  }
  try {
    return readOpenFile(file, h5, onProgress);
  } catch (error) {
    if (error instanceof KerasImportError) throw error;
    throw new KerasImportError(`${file}: cannot read it as HDF5 (damaged file?): ${hdf5Reason(error)}`, { cause: error });
  } finally {
    try {
      h5.close();
    } catch {
      // Closing a file whose read failed may fail too; the first error is the one that matters.
    }
  }
}

function readOpenFile(file: string, h5: Group, onProgress?: (done: number, total: number) => void): KerasWeightsFile {
  let root: Group = h5;
  let layout: KerasWeightsFile['layout'] = 'weights';
  if (!hasListAttribute(h5, 'layer_names')) {
    const modelWeights = h5.get('model_weights');
    if (isGroup(modelWeights) && hasListAttribute(modelWeights, 'layer_names')) {
      root = modelWeights;
      layout = 'full-model';
    } else {
      const keys = h5.keys();
      const keras3 = keys.includes('layers') && keys.includes('vars') ? ' It looks like a Keras 3 `.weights.h5` file, whose layout differs; save the weights in the Keras 2 HDF5 format (tf.keras, legacy h5).' : '';
      throw new KerasImportError(
        `${file} is an HDF5 file but not a Keras weights file: no \`layer_names\` attribute at its root nor in a \`model_weights\` group (it holds: ${describeKeys(keys)}).${keras3}`,
      );
    }
  }

  const layerNames = readListAttribute(root, 'layer_names', `${file}: attribute layer_names`);
  const layers = new Map<string, KerasWeight[]>();
  layerNames.forEach((layerName, index) => {
    const group = root.get(layerName);
    if (!isGroup(group)) throw new KerasImportError(`${file}: layer ${layerName} is listed in layer_names but has no group`);
    // Keras reads a missing weight_names as "no weights" too.
    const weightNames = readListAttribute(group, 'weight_names', `${file}: weight_names of layer ${layerName}`);
    if (weightNames.length > 0) {
      if (layers.has(layerName)) throw new KerasImportError(`${file}: layer ${layerName} is listed twice in layer_names`);
      layers.set(layerName, weightNames.map((weightName) => readWeight(file, group, layerName, weightName)));
    }
    onProgress?.(index + 1, layerNames.length);
  });
  return { layout, layerNames, layers };
}

/**
 * Keras splits a name list too long for one HDF5 object header (64 KiB) into `name0`, `name1`,
 * … (`save_attributes_to_hdf5_group`); read it back the way `load_attributes_from_hdf5_group` does.
 */
function readListAttribute(group: Group, name: string, what: string): string[] {
  const attrs = group.attrs;
  if (name in attrs) return stringList(attrs[name].value, what);
  const out: string[] = [];
  for (let chunk = 0; `${name}${chunk}` in attrs; chunk++) out.push(...stringList(attrs[`${name}${chunk}`].value, what));
  return out;
}

function hasListAttribute(group: Group, name: string): boolean {
  const attrs = group.attrs;
  return name in attrs || `${name}0` in attrs;
}

function readWeight(file: string, group: Group, layerName: string, weightName: string): KerasWeight {
  const dataset = group.get(weightName);
  if (!isDataset(dataset)) throw new KerasImportError(`${file}: layer ${layerName} lists weight ${weightName}, but there is no dataset of that name in its group`);
  const shape = dataset.shape ?? [];
  const value = dataset.value;
  let values: Float32Array;
  if (value instanceof Float32Array) values = value;
  else if (value instanceof Float64Array) values = Float32Array.from(value); // Keras only writes float32; a converted file may not
  else {
    throw new KerasImportError(`${file}: weight ${weightName} of layer ${layerName} is not floating point (HDF5 type ${JSON.stringify(dataset.dtype)})`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (values.length !== count) {
    throw new KerasImportError(`${file}: weight ${weightName} of layer ${layerName} holds ${values.length} values for shape [${shape.join(', ')}]`);
  }
  return { name: weightName, shape, values };
}

function isGroup(entity: unknown): entity is Group {
  return entity instanceof h5wasm.Group;
}

function isDataset(entity: unknown): entity is Dataset {
  return entity instanceof h5wasm.Dataset;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/**
 * A string-list attribute as strings, whatever h5py made of it: an array of fixed-length byte
 * strings (Keras' own `[n.encode('utf8') ...]`), variable-length strings, a single string, or
 * raw bytes. Padding NULs are dropped.
 */
export function stringList(value: unknown, what: string): string[] {
  const one = (item: unknown): string => {
    if (typeof item === 'string') return item.replace(/\0+$/, '');
    if (item instanceof Uint8Array) return utf8.decode(item).replace(/\0+$/, '');
    throw new KerasImportError(`${what} is not a list of strings (found ${typeof item})`);
  };
  if (value === null || value === undefined) return [];
  if (Array.isArray(value)) return value.map(one);
  // h5py stores an empty Python list as an empty float64 array (Keras does this for layers without weights).
  if (ArrayBuffer.isView(value) && !(value instanceof Uint8Array) && value.byteLength === 0) return [];
  return [one(value)];
}

/** The useful line of an HDF5 diagnostic: the innermost error (e.g. "truncated file: eof = …"). */
export function hdf5Reason(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const frames = [...text.matchAll(/#\d+: .*? in ([\w]+)\(\): (.*)$/gm)];
  const last = frames.at(-1);
  if (last) return `${last[2].trim()} (${last[1]})`;
  return text.split('\n')[0].slice(0, 300);
}

function describeKeys(keys: string[]): string {
  if (keys.length === 0) return 'nothing';
  const shown = keys.slice(0, 8).join(', ');
  return keys.length > 8 ? `${shown}, … ${keys.length - 8} more` : shown;
}
