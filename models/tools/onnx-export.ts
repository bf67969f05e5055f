/**
 * TF.js layers model → ONNX, in TypeScript, for the `onnx` engine (onnxruntime-node).
 *
 * The exporter walks the model's functional graph through each layer's inbound nodes, so any
 * model made of the supported layer classes exports, not just ResNet50. The ONNX graph is NCHW
 * inside (what onnxruntime's CPU kernels are fastest at) behind ONE Transpose of the NHWC input,
 * and carries inference-only simplifications that change no result beyond float rounding:
 *  - BatchNormalization after a Conv2D is folded into the conv's weights and bias (float64);
 *  - ZeroPadding2D feeding only a Conv2D becomes that conv's `pads`; feeding only a
 *    MaxPooling2D, the pool's pads plus (when needed) an exact correction, see zeroPaddingMask;
 *  - 'same' padding is spelled out as explicit pads (TF puts the odd pixel bottom/right).
 *
 * Next to the store's model.json it writes model.onnx plus a sidecar model.onnx.json naming the
 * weights (manifest SHA-256) and exporter version it was made from; `ensureOnnxModel` re-exports
 * whenever they no longer match, so a stale ONNX file is never served.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import protobuf from 'protobufjs';
import { z } from 'zod';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs';

import { spawnWorker } from '../../server/threads/spawn-worker.ts';
import { loadTfjs } from '../../server/engines/tfjs-runtime.ts';
import { loadLayersModelFromStore, MANIFEST_JSON, ModelStoreError, readManifest } from './store.ts';

/** Opset 13: every op used here exists in it unchanged since, and onnxruntime optimises it fully. */
export const ONNX_OPSET = 13;
/** The IR version that goes with opset 13 (ONNX 1.8). */
export const ONNX_IR_VERSION = 7;
/**
 * Recorded in the sidecar; bump it whenever the exporter's output changes, so that every
 * existing model.onnx is re-exported.
 */
export const ONNX_EXPORTER = 'resnet-hub onnx-export v1';
export const ONNX_FILE = 'model.onnx';
export const ONNX_SIDECAR = 'model.onnx.json';
export const ONNX_INPUT = 'input';
export const ONNX_OUTPUT = 'probabilities';

type Layer = SymbolicTensor['sourceLayer'];
type LayerNode = Layer['inboundNodes'][number];

// ---------------------------------------------------------------------------------------------
// ONNX messages, as plain objects in the shape protobufjs encodes (field names as in onnx.proto).

interface TensorProto {
  name: string;
  dims: number[];
  data_type: number;
  raw_data: Uint8Array;
}
interface AttributeProto {
  name: string;
  type: number;
  i?: number;
  f?: number;
  s?: Uint8Array;
  ints?: number[];
}
interface NodeProto {
  name: string;
  op_type: string;
  input: string[];
  output: string[];
  attribute: AttributeProto[];
}
interface ValueInfoProto {
  name: string;
  type: { tensor_type: { elem_type: number; shape: { dim: Array<{ dim_value: number } | { dim_param: string }> } } };
}
interface ModelProto {
  ir_version: number;
  opset_import: Array<{ domain: string; version: number }>;
  producer_name: string;
  producer_version: string;
  doc_string: string;
  graph: {
    name: string;
    node: NodeProto[];
    initializer: TensorProto[];
    input: ValueInfoProto[];
    output: ValueInfoProto[];
  };
  metadata_props: Array<{ key: string; value: string }>;
}

/** TensorProto.DataType */
const FLOAT = 1;
const INT64 = 7;
/** AttributeProto.AttributeType */
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

const attrInt = (name: string, i: number): AttributeProto => ({ name, type: ATTR_INT, i });
const attrInts = (name: string, ints: number[]): AttributeProto => ({ name, type: ATTR_INTS, ints });
const attrFloat = (name: string, f: number): AttributeProto => ({ name, type: ATTR_FLOAT, f });
const attrString = (name: string, s: string): AttributeProto => ({ name, type: ATTR_STRING, s: new TextEncoder().encode(s) });

/** The bytes of `array` itself (no copy): raw_data is little-endian, checked once below. */
function bytesOf(array: Float32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

// ---------------------------------------------------------------------------------------------

/** A layer (or its configuration) the exporter cannot translate. */
export class OnnxExportError extends Error {
  constructor(
    readonly layer: string,
    message: string,
  ) {
    super(`cannot export layer '${layer}' to ONNX: ${message}`);
    this.name = 'OnnxExportError';
  }
}

/** One call of a layer in the graph: `layer.inboundNodes[index]`. */
interface Step {
  layer: Layer;
  node: LayerNode;
  className: string;
  inputs: SymbolicTensor[];
  outputs: SymbolicTensor[];
}

/** What a Keras tensor is in the ONNX graph. */
interface Value {
  /** ONNX tensor name. Rank-4 tensors are NCHW there, everything else as in Keras. */
  name: string;
  /** Keras (NHWC) shape, batch first, null where unknown. */
  shape: Array<number | null>;
  /**
   * Zero padding [top, left, bottom, right] not applied yet: a ZeroPadding2D whose only consumer
   * is a Conv2D or MaxPooling2D, which takes it into its own padding.
   */
  pendingPads?: [number, number, number, number];
  /** Known to be ≥ 0 (or NaN) everywhere, e.g. a ReLU output. */
  nonNegative?: boolean;
}

function tensorKey(t: SymbolicTensor): string {
  return `${t.sourceLayer.name}\u0000${t.nodeIndex}\u0000${t.tensorIndex}`;
}

/** The layer calls that produce the model's outputs, dependencies first. */
function topologicalSteps(model: LayersModel): Step[] {
  const order: Step[] = [];
  const done = new Set<LayerNode>();
  const visit = (tensor: SymbolicTensor): void => {
    const layer = tensor.sourceLayer;
    const node = layer.inboundNodes[tensor.nodeIndex];
    if (!node) throw new OnnxExportError(layer.name, `tensor ${tensor.name} has no inbound node ${tensor.nodeIndex}`);
    if (done.has(node)) return;
    done.add(node);
    for (const input of node.inputTensors) visit(input);
    order.push({ layer, node, className: layer.getClassName(), inputs: node.inputTensors, outputs: node.outputTensors });
  };
  for (const output of model.outputs) visit(output);
  return order;
}

// Layer configuration, read through getConfig() (the public, serialisable view of a layer).

type Config = Record<string, unknown>;

function configOf(layer: Layer): Config {
  return layer.getConfig() as Config;
}

function numberPair(layer: Layer, config: Config, key: string): [number, number] {
  const v = config[key];
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0] as number, v[1] as number];
  throw new OnnxExportError(layer.name, `unexpected ${key} ${JSON.stringify(v)}`);
}

function requireChannelsLast(layer: Layer, config: Config): void {
  const format = config.dataFormat ?? 'channelsLast';
  if (format !== 'channelsLast') throw new OnnxExportError(layer.name, `dataFormat '${String(format)}' (only channelsLast is supported)`);
}

/** Weights by their Keras name within the layer ('kernel', 'bias', 'gamma', 'moving_mean', ...). */
function weightsOf(layer: Layer): Map<string, { shape: number[]; values: Float32Array }> {
  const out = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const variable of layer.weights) {
    const key = variable.originalName.slice(variable.originalName.lastIndexOf('/') + 1);
    const tensor = variable.read();
    if (tensor.dtype !== 'float32') throw new OnnxExportError(layer.name, `weight ${variable.originalName} is ${tensor.dtype}, not float32`);
    // Read-only use: on the cpu backend dataSync() hands back the tensor's own storage.
    out.set(key, { shape: tensor.shape, values: tensor.dataSync() as Float32Array });
  }
  return out;
}

function requireWeight(layer: Layer, weights: ReturnType<typeof weightsOf>, key: string): { shape: number[]; values: Float32Array } {
  const w = weights.get(key);
  if (!w) throw new OnnxExportError(layer.name, `missing weight '${key}' (has: ${[...weights.keys()].join(', ') || 'none'})`);
  return w;
}

/** Per-channel y = x·scale + shift of an inference-mode BatchNormalization, in float64. */
function batchNormAffine(layer: Layer, config: Config, channels: number): { scale: Float64Array; shift: Float64Array } {
  const weights = weightsOf(layer);
  const epsilon = Number(config.epsilon ?? 1e-3);
  const mean = requireWeight(layer, weights, 'moving_mean').values;
  const variance = requireWeight(layer, weights, 'moving_variance').values;
  const gamma = config.scale === false ? undefined : requireWeight(layer, weights, 'gamma').values;
  const beta = config.center === false ? undefined : requireWeight(layer, weights, 'beta').values;
  if (mean.length !== channels) throw new OnnxExportError(layer.name, `has ${mean.length} channels, its input ${channels}`);
  const scale = new Float64Array(channels);
  const shift = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + epsilon);
    shift[c] = (beta ? beta[c] : 0) - mean[c] * scale[c];
  }
  return { scale, shift };
}

/** BatchNormalization over the last (channel) axis, the only kind that maps onto NCHW axis 1. */
function requireChannelAxis(layer: Layer, config: Config, rank: number): void {
  const axis = config.axis;
  const axes = Array.isArray(axis) ? axis : [axis];
  if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== rank - 1)) {
    throw new OnnxExportError(layer.name, `BatchNormalization axis ${JSON.stringify(axis)} (only the channel axis ${rank - 1} / -1 is supported)`);
  }
}

/**
 * TF 'same' padding for one spatial axis: output ceil(in/stride), the total padding split with
 * the odd pixel at the end (bottom/right), unlike some other frameworks.
 */
function samePadding(size: number, kernel: number, stride: number, dilation: number): [number, number] {
  const effective = (kernel - 1) * dilation + 1;
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + effective - size, 0);
  const begin = Math.floor(total / 2);
  return [begin, total - begin];
}

/**
 * A ZeroPadding2D in front of a max-pool. ONNX MaxPool pads act as -inf; zeros differ only in a
 * window that covers some zero-padded cell, where the result must be max(window, 0). So the pool
 * runs with the zero padding as ordinary pads, and its output goes through Max with a constant
 * mask: 0 where the window covers a zero-padded cell, -inf elsewhere. Exact for any input.
 *
 * (A Pad node followed by MaxPool is NOT safe: onnxruntime's PadFusion, at every optimisation
 * level from 'basic' up, moves a zero Pad into the MaxPool's pads and so changes the result for
 * negative windows — measured with onnxruntime-node 1.30.)
 *
 * Returns undefined when the mask cannot change anything, which is the ResNet50 case (pool1_pad
 * on a ReLU output): if the input is ≥ 0 and every window that covers a zero-padded cell also
 * covers a real one, that window's max is already ≥ 0, so max(window, 0) = max(window) and the
 * zeros behave exactly like -inf padding.
 *
 * @param shape Keras input shape after the zero padding
 * @param zero [top, left, bottom, right] zero padding, innermost; @param same 'same' padding (-inf), outside it
 */
function zeroPaddingMask(
  layer: Layer,
  shape: Array<number | null>,
  outShape: Array<number | null>,
  zero: number[],
  same: number[],
  kernel: [number, number],
  strides: [number, number],
  nonNegative: boolean,
): Float32Array | undefined {
  const [, h, w] = shape;
  const [, oh, ow] = outShape;
  if (h === null || w === null || oh === null || ow === null) {
    throw new OnnxExportError(layer.name, 'zero padding before a max-pool needs known spatial dimensions');
  }
  /** For each output index along one axis: does its window cover a zero cell / a real cell? */
  const axis = (size: number, out: number, k: number, s: number, zBegin: number, zEnd: number, sBegin: number) => {
    const real = size - zBegin - zEnd;
    // Padded coordinates: [sBegin 'same' cells][zBegin zeros][real][zEnd zeros][then 'same' cells].
    const zeroLo = sBegin;
    const realLo = sBegin + zBegin;
    const realHi = realLo + real; // exclusive
    const zeroHi = realHi + zEnd; // exclusive
    const coversZero: boolean[] = [];
    const coversReal: boolean[] = [];
    for (let i = 0; i < out; i++) {
      const lo = i * s;
      const hi = lo + k; // exclusive
      const overlaps = (a: number, b: number) => lo < b && a < hi;
      coversReal.push(overlaps(realLo, realHi));
      coversZero.push(overlaps(zeroLo, realLo) || overlaps(realHi, zeroHi));
    }
    return { coversZero, coversReal, coversNonSame: coversZero.map((z, i) => z || coversReal[i]) };
  };
  const rows = axis(h, oh, kernel[0], strides[0], zero[0], zero[2], same[0]);
  const cols = axis(w, ow, kernel[1], strides[1], zero[1], zero[3], same[1]);
  const mask = new Float32Array(oh * ow).fill(-Infinity);
  let needed = false;
  for (let i = 0; i < oh; i++) {
    for (let j = 0; j < ow; j++) {
      // A zero cell is one inside both the rows and columns not padded by 'same', and in the
      // zero-padded band of either.
      const zeroCell = rows.coversNonSame[i] && cols.coversNonSame[j] && (rows.coversZero[i] || cols.coversZero[j]);
      if (!zeroCell) continue;
      mask[i * ow + j] = 0;
      if (!(nonNegative && rows.coversReal[i] && cols.coversReal[j])) needed = true;
    }
  }
  return needed ? mask : undefined;
}

/**
 * Layers that compute nothing at inference: linear Activation, Dropout, Flatten of a flat
 * tensor, and a BatchNormalization whose float32 scale is exactly 1 and shift exactly 0 (e.g.
 * freshly initialised with a tiny epsilon). They become no ONNX node at all.
 */
function isIdentityLayer(step: Step): boolean {
  const config = configOf(step.layer);
  switch (step.className) {
    case 'Activation':
      return config.activation === 'linear';
    case 'Dropout':
      return true;
    case 'Flatten':
      return step.inputs[0]?.shape.length === 2;
    case 'BatchNormalization': {
      const shape = step.inputs[0]?.shape ?? [];
      const channels = shape[shape.length - 1];
      const axes = Array.isArray(config.axis) ? config.axis : [config.axis];
      if ((shape.length !== 2 && shape.length !== 4) || channels === null || axes.length !== 1 || (axes[0] !== -1 && axes[0] !== shape.length - 1)) {
        return false; // not exportable as is; the BatchNormalization case says why
      }
      const { scale, shift } = batchNormAffine(step.layer, config, channels);
      return scale.every((v) => Math.fround(v) === 1) && shift.every((v) => Math.fround(v) === 0);
    }
    default:
      return false;
  }
}

class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly names = new Set<string>([ONNX_INPUT, ONNX_OUTPUT]);

  /** `base`, or `base_2`, `base_3`... if taken: ONNX names must be unique across the graph. */
  name(base: string): string {
    let candidate = base;
    for (let i = 2; this.names.has(candidate); i++) candidate = `${base}_${i}`;
    this.names.add(candidate);
    return candidate;
  }

  node(opType: string, name: string, input: string[], output: string[], attribute: AttributeProto[] = []): void {
    this.nodes.push({ name: this.name(name), op_type: opType, input, output, attribute });
  }

  float(base: string, dims: number[], values: Float32Array): string {
    const name = this.name(base);
    this.initializers.push({ name, dims, data_type: FLOAT, raw_data: bytesOf(values) });
    return name;
  }

  int64(base: string, values: number[]): string {
    const name = this.name(base);
    const data = BigInt64Array.from(values, (v) => BigInt(v));
    this.initializers.push({ name, dims: [values.length], data_type: INT64, raw_data: bytesOf(data) });
    return name;
  }
}

/** Activations whose output is never negative. */
const NON_NEGATIVE_ACTIVATIONS: ReadonlySet<unknown> = new Set(['relu', 'sigmoid', 'softmax']);

/** Translates a Keras activation name (as in the layer config) into ONNX node(s). */
function emitActivation(g: GraphBuilder, layer: Layer, activation: unknown, input: string, output: string, rank: number): void {
  switch (activation) {
    case 'relu':
      g.node('Relu', layer.name, [input], [output]);
      return;
    case 'sigmoid':
      g.node('Sigmoid', layer.name, [input], [output]);
      return;
    case 'tanh':
      g.node('Tanh', layer.name, [input], [output]);
      return;
    case 'softmax':
      // Keras normalises over the last axis; for a rank-4 tensor that is channels = NCHW axis 1.
      g.node('Softmax', layer.name, [input], [output], [attrInt('axis', rank === 4 ? 1 : -1)]);
      return;
    default:
      throw new OnnxExportError(layer.name, `activation '${String(activation)}' is not supported (relu, sigmoid, tanh, softmax, linear are)`);
  }
}

export interface BuildOptions {
  weightsSha256: string;
}

/** The ONNX model for `model`, as a plain object (weights referenced, not yet serialised). */
function buildModelProto(model: LayersModel, options: BuildOptions): ModelProto {
  if (os.endianness() !== 'LE') throw new Error('ONNX raw_data is little-endian; this exporter assumes a little-endian host');
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new Error(`only single-input, single-output models can be exported (this one has ${model.inputs.length} inputs, ${model.outputs.length} outputs)`);
  }
  const steps = topologicalSteps(model);
  const outputKey = tensorKey(model.outputs[0]);

  // Who reads each tensor: folding BN into a conv, or padding into a conv, is only valid when
  // nothing else (including the model output) needs the unfolded value.
  const consumers = new Map<string, Step[]>();
  for (const step of steps) {
    for (const input of step.inputs) {
      const key = tensorKey(input);
      consumers.set(key, [...(consumers.get(key) ?? []), step]);
    }
  }
  const soleConsumer = (t: SymbolicTensor): Step | undefined => {
    const key = tensorKey(t);
    const list = consumers.get(key) ?? [];
    return list.length === 1 && key !== outputKey ? list[0] : undefined;
  };
  const passThrough = new Map<Step, boolean>();
  const isPassThrough = (step: Step): boolean => {
    let known = passThrough.get(step);
    if (known === undefined) {
      known = isIdentityLayer(step);
      passThrough.set(step, known);
    }
    return known;
  };
  /**
   * The layer that really reads `t`, looking through identity layers (which emit no node): what
   * onnxruntime sees once it has removed no-op nodes, which is what its fusions match on.
   */
  const effectiveConsumer = (t: SymbolicTensor): Step | undefined => {
    let step = soleConsumer(t);
    while (step && isPassThrough(step)) step = soleConsumer(step.outputs[0]);
    return step;
  };

  const g = new GraphBuilder();
  const values = new Map<string, Value>();
  const folded = new Set<Step>();
  const valueOf = (step: Step, t: SymbolicTensor): Value => {
    const v = values.get(tensorKey(t));
    if (!v) throw new OnnxExportError(step.layer.name, `input ${t.name} was not produced by an exported layer`);
    return v;
  };
  /** A materialised input (no pending padding), for every layer but Conv2D and MaxPooling2D. */
  const plainInput = (step: Step, t: SymbolicTensor): Value => {
    const v = valueOf(step, t);
    if (v.pendingPads) throw new Error(`internal: deferred padding reached ${step.layer.name}`);
    return v;
  };
  const outName = (step: Step, index = 0): string => {
    const t = step.outputs[index];
    return g.name(t.nodeIndex === 0 && t.tensorIndex === 0 ? step.layer.name : `${step.layer.name}:${t.nodeIndex}:${t.tensorIndex}`);
  };
  const define = (t: SymbolicTensor, value: Value): void => {
    values.set(tensorKey(t), value);
  };

  const inputShape = model.inputs[0].shape;
  const inputInfo = valueInfo(ONNX_INPUT, inputShape);

  for (const step of steps) {
    const { layer, className } = step;
    if (folded.has(step)) continue;
    if (className !== 'InputLayer' && step.inputs.length === 0) throw new OnnxExportError(layer.name, 'has no inputs');
    const config = configOf(layer);
    const out = step.outputs[0];
    const rankOut = out.shape.length;
    if (isPassThrough(step)) {
      // Same values, same layout: the Keras tensor is its input's ONNX tensor (padding included).
      define(out, { ...valueOf(step, step.inputs[0]), shape: out.shape });
      continue;
    }

    switch (className) {
      case 'InputLayer': {
        if (inputShape.length === 4) {
          // The single layout change: everything downstream is NCHW.
          const nchw = g.name('input_nchw');
          g.node('Transpose', 'input_to_nchw', [ONNX_INPUT], [nchw], [attrInts('perm', [0, 3, 1, 2])]);
          define(out, { name: nchw, shape: out.shape });
        } else if (inputShape.length === 2) {
          define(out, { name: ONNX_INPUT, shape: out.shape });
        } else {
          throw new OnnxExportError(layer.name, `input rank ${inputShape.length} (only [N,H,W,C] or [N,features] are supported)`);
        }
        break;
      }

      case 'ZeroPadding2D': {
        requireChannelsLast(layer, config);
        const input = plainInput(step, step.inputs[0]);
        const padding = config.padding;
        if (!Array.isArray(padding) || padding.length !== 2 || !padding.every((p) => Array.isArray(p) && p.length === 2)) {
          throw new OnnxExportError(layer.name, `unexpected padding ${JSON.stringify(padding)}`);
        }
        const [[top, bottom], [left, right]] = padding as [[number, number], [number, number]];
        const consumer = effectiveConsumer(out)?.className;
        if (consumer === 'Conv2D' || consumer === 'MaxPooling2D') {
          // Taken into the consumer's own padding (see there), never as a Pad node in front of it.
          define(out, { ...input, shape: out.shape, pendingPads: [top, left, bottom, right] });
        } else {
          // A Pad node is safe here: onnxruntime only fuses a Pad whose single reader is a
          // Conv/MaxPool/AveragePool (after removing no-ops, which we never emit between).
          const pads = g.int64(`${layer.name}/pads`, [0, 0, top, left, 0, 0, bottom, right]);
          const name = outName(step);
          g.node('Pad', layer.name, [input.name, pads], [name], [attrString('mode', 'constant')]);
          define(out, { name, shape: out.shape, nonNegative: input.nonNegative });
        }
        break;
      }

      case 'Conv2D': {
        requireChannelsLast(layer, config);
        const input = valueOf(step, step.inputs[0]);
        const inShape = step.inputs[0].shape;
        if (inShape.length !== 4) throw new OnnxExportError(layer.name, `input rank ${inShape.length}, expected 4`);
        const [kh, kw] = numberPair(layer, config, 'kernelSize');
        const [sh, sw] = numberPair(layer, config, 'strides');
        const [dh, dw] = numberPair(layer, config, 'dilationRate');
        const [top, left, bottom, right] = input.pendingPads ?? [0, 0, 0, 0];
        const pads = [top, left, bottom, right];
        if (config.padding === 'same') {
          // inShape is the (already zero-padded) Keras input, which is what TF pads for 'same'.
          const [h, w] = [inShape[1], inShape[2]];
          if (h === null || w === null) throw new OnnxExportError(layer.name, "'same' padding needs known spatial input dimensions");
          const [pt, pb] = samePadding(h, kh, sh, dh);
          const [pl, pr] = samePadding(w, kw, sw, dw);
          pads[0] += pt;
          pads[1] += pl;
          pads[2] += pb;
          pads[3] += pr;
        } else if (config.padding !== 'valid') {
          throw new OnnxExportError(layer.name, `padding '${String(config.padding)}' (valid and same are supported)`);
        }

        const weights = weightsOf(layer);
        const kernel = requireWeight(layer, weights, 'kernel');
        const [, , ci, co] = kernel.shape;
        const bias = config.useBias === false ? undefined : requireWeight(layer, weights, 'bias').values;

        // Fold a following BatchNormalization when it is the conv's only reader.
        let scale: Float64Array | undefined;
        let shift: Float64Array | undefined;
        let result = out;
        let resultLayer = layer;
        const next = soleConsumer(out);
        if (next?.className === 'BatchNormalization' && (config.activation ?? 'linear') === 'linear') {
          const bnConfig = configOf(next.layer);
          requireChannelAxis(next.layer, bnConfig, 4);
          ({ scale, shift } = batchNormAffine(next.layer, bnConfig, co));
          folded.add(next);
          result = next.outputs[0];
          resultLayer = next.layer;
        }

        // HWIO → OIHW, times the BN scale, rounded to float32 once.
        const w = new Float32Array(co * ci * kh * kw);
        const src = kernel.values;
        for (let o = 0; o < co; o++) {
          const s = scale ? scale[o] : 1;
          for (let i = 0; i < ci; i++) {
            for (let y = 0; y < kh; y++) {
              for (let x = 0; x < kw; x++) {
                w[((o * ci + i) * kh + y) * kw + x] = src[((y * kw + x) * ci + i) * co + o] * s;
              }
            }
          }
        }
        const b = new Float32Array(co);
        for (let o = 0; o < co; o++) {
          const raw = bias ? bias[o] : 0;
          b[o] = scale && shift ? raw * scale[o] + shift[o] : raw;
        }
        const wName = g.float(`${layer.name}/kernel`, [co, ci, kh, kw], w);
        const bName = g.float(`${layer.name}/bias`, [co], b);

        const activation = config.activation ?? 'linear';
        const name = result === out ? outName(step) : g.name(resultLayer.name);
        const convOut = activation === 'linear' ? name : g.name(`${layer.name}/linear`);
        g.node('Conv', layer.name, [input.name, wName, bName], [convOut], [
          attrInts('kernel_shape', [kh, kw]),
          attrInts('strides', [sh, sw]),
          attrInts('pads', pads),
          attrInts('dilations', [dh, dw]),
          attrInt('group', 1),
        ]);
        if (activation !== 'linear') emitActivation(g, layer, activation, convOut, name, 4);
        define(result, { name, shape: result.shape, nonNegative: NON_NEGATIVE_ACTIVATIONS.has(activation) && result === out });
        break;
      }

      case 'BatchNormalization': {
        const input = plainInput(step, step.inputs[0]);
        const rank = step.inputs[0].shape.length;
        if (rank !== 4 && rank !== 2) throw new OnnxExportError(layer.name, `input rank ${rank} (2 or 4 are supported)`);
        requireChannelAxis(layer, config, rank);
        const channels = step.inputs[0].shape[rank - 1];
        if (channels === null) throw new OnnxExportError(layer.name, 'unknown channel count');
        // As a per-channel Mul + Add computed in float64, the same arithmetic as the folded case.
        const { scale, shift } = batchNormAffine(layer, config, channels);
        const dims = rank === 4 ? [channels, 1, 1] : [channels];
        const scaleName = g.float(`${layer.name}/scale`, dims, Float32Array.from(scale));
        const shiftName = g.float(`${layer.name}/shift`, dims, Float32Array.from(shift));
        const scaled = g.name(`${layer.name}/scaled`);
        const name = outName(step);
        g.node('Mul', `${layer.name}/mul`, [input.name, scaleName], [scaled]);
        g.node('Add', `${layer.name}/add`, [scaled, shiftName], [name]);
        define(out, { name, shape: out.shape });
        break;
      }

      case 'Activation': {
        const input = plainInput(step, step.inputs[0]);
        const name = outName(step);
        emitActivation(g, layer, config.activation, input.name, name, rankOut);
        define(out, { name, shape: out.shape, nonNegative: NON_NEGATIVE_ACTIVATIONS.has(config.activation) });
        break;
      }

      case 'ReLU': {
        const input = plainInput(step, step.inputs[0]);
        if (config.maxValue !== undefined && config.maxValue !== null) {
          throw new OnnxExportError(layer.name, `ReLU with maxValue ${String(config.maxValue)} is not supported`);
        }
        const name = outName(step);
        g.node('Relu', layer.name, [input.name], [name]);
        define(out, { name, shape: out.shape, nonNegative: true });
        break;
      }

      case 'Add': {
        const inputs = step.inputs.map((t) => plainInput(step, t));
        const shapes = step.inputs.map((t) => JSON.stringify(t.shape.slice(1)));
        // Keras broadcasts some mismatched shapes; in NCHW that would broadcast differently.
        if (new Set(shapes).size !== 1) throw new OnnxExportError(layer.name, `Add of different shapes ${shapes.join(' + ')} is not supported`);
        const name = outName(step);
        g.node(inputs.length === 2 ? 'Add' : 'Sum', layer.name, inputs.map((v) => v.name), [name]);
        define(out, { name, shape: out.shape, nonNegative: inputs.every((v) => v.nonNegative) });
        break;
      }

      case 'MaxPooling2D': {
        requireChannelsLast(layer, config);
        const input = valueOf(step, step.inputs[0]);
        const inShape = step.inputs[0].shape; // after any pending zero padding
        const outShape = out.shape;
        const [kh, kw] = numberPair(layer, config, 'poolSize');
        const [sh, sw] = config.strides === null || config.strides === undefined ? [kh, kw] : numberPair(layer, config, 'strides');
        const zero = input.pendingPads ?? [0, 0, 0, 0];
        // TF's 'same' max-pool ignores the padded cells: exactly ONNX MaxPool pads (-inf).
        let same = [0, 0, 0, 0];
        if (config.padding === 'same') {
          const [h, w] = [inShape[1], inShape[2]];
          if (h === null || w === null) throw new OnnxExportError(layer.name, "'same' padding needs known spatial input dimensions");
          const [pt, pb] = samePadding(h, kh, sh, 1);
          const [pl, pr] = samePadding(w, kw, sw, 1);
          same = [pt, pl, pb, pr];
        } else if (config.padding !== 'valid') {
          throw new OnnxExportError(layer.name, `padding '${String(config.padding)}' (valid and same are supported)`);
        }
        const mask = zero.some((p) => p > 0)
          ? zeroPaddingMask(layer, inShape, outShape, zero, same, [kh, kw], [sh, sw], input.nonNegative === true)
          : undefined;
        const name = outName(step);
        const pooled = mask ? g.name(`${layer.name}/pool`) : name;
        g.node('MaxPool', layer.name, [input.name], [pooled], [
          attrInts('kernel_shape', [kh, kw]),
          attrInts('strides', [sh, sw]),
          attrInts('pads', zero.map((z, i) => z + same[i])),
        ]);
        if (mask) {
          const maskName = g.float(`${layer.name}/zero_padding_mask`, [1, 1, outShape[1] as number, outShape[2] as number], mask);
          g.node('Max', `${layer.name}/zero_padding`, [pooled, maskName], [name]);
        }
        define(out, { name, shape: out.shape, nonNegative: input.nonNegative });
        break;
      }

      case 'GlobalAveragePooling2D': {
        requireChannelsLast(layer, config);
        const input = plainInput(step, step.inputs[0]);
        const pooled = g.name(`${layer.name}/nchw`);
        const name = outName(step);
        g.node('GlobalAveragePool', layer.name, [input.name], [pooled]);
        g.node('Flatten', `${layer.name}/flatten`, [pooled], [name], [attrInt('axis', 1)]);
        define(out, { name, shape: out.shape, nonNegative: input.nonNegative });
        break;
      }

      case 'Flatten': {
        const input = plainInput(step, step.inputs[0]);
        const rank = step.inputs[0].shape.length;
        const name = outName(step);
        if (rank === 4) {
          // Keras flattens NHWC order; go back to NHWC first so features line up with Dense weights.
          const nhwc = g.name(`${layer.name}/nhwc`);
          g.node('Transpose', `${layer.name}/to_nhwc`, [input.name], [nhwc], [attrInts('perm', [0, 2, 3, 1])]);
          g.node('Flatten', layer.name, [nhwc], [name], [attrInt('axis', 1)]);
        } else {
          throw new OnnxExportError(layer.name, `Flatten of a rank-${rank} tensor is not supported`);
        }
        define(out, { name, shape: out.shape });
        break;
      }

      case 'Dense': {
        const input = plainInput(step, step.inputs[0]);
        if (step.inputs[0].shape.length !== 2) {
          throw new OnnxExportError(layer.name, `Dense on a rank-${step.inputs[0].shape.length} input is not supported (flatten or pool first)`);
        }
        const weights = weightsOf(layer);
        const kernel = requireWeight(layer, weights, 'kernel');
        const [units] = kernel.shape.slice(1);
        // [in, out] is already Gemm's B without transB: the weights are used as stored.
        const kName = g.float(`${layer.name}/kernel`, kernel.shape, kernel.values);
        const gemmInputs = [input.name, kName];
        if (config.useBias !== false) {
          gemmInputs.push(g.float(`${layer.name}/bias`, [units], requireWeight(layer, weights, 'bias').values));
        }
        const activation = config.activation ?? 'linear';
        const name = outName(step);
        const gemmOut = activation === 'linear' ? name : g.name(`${layer.name}/linear`);
        g.node('Gemm', layer.name, gemmInputs, [gemmOut], [attrFloat('alpha', 1), attrFloat('beta', 1), attrInt('transA', 0), attrInt('transB', 0)]);
        if (activation !== 'linear') emitActivation(g, layer, activation, gemmOut, name, 2);
        define(out, { name, shape: out.shape, nonNegative: NON_NEGATIVE_ACTIVATIONS.has(activation) });
        break;
      }

      default:
        throw new OnnxExportError(layer.name, `layer class ${className} is not supported`);
    }
  }

  // Name the model's output 'probabilities', back in NHWC if it is an image-shaped tensor.
  const output = values.get(outputKey);
  if (!output) throw new Error('internal: the model output was not produced');
  const outputShape = model.outputs[0].shape;
  if (outputShape.length === 4) {
    g.node('Transpose', 'output_to_nhwc', [output.name], [ONNX_OUTPUT], [attrInts('perm', [0, 2, 3, 1])]);
  } else {
    const producer = g.nodes.find((n) => n.output.includes(output.name));
    if (!producer) {
      g.node('Identity', 'output', [output.name], [ONNX_OUTPUT]);
    } else {
      for (const n of g.nodes) {
        n.input = n.input.map((x) => (x === output.name ? ONNX_OUTPUT : x));
        n.output = n.output.map((x) => (x === output.name ? ONNX_OUTPUT : x));
      }
    }
  }

  return {
    ir_version: ONNX_IR_VERSION,
    opset_import: [{ domain: '', version: ONNX_OPSET }],
    producer_name: 'resnet-hub',
    producer_version: ONNX_EXPORTER,
    doc_string: `TF.js layers model '${model.name}' exported for onnxruntime; input NHWC caffe-preprocessed float32`,
    graph: {
      name: model.name,
      node: g.nodes,
      initializer: g.initializers,
      input: [inputInfo],
      output: [valueInfo(ONNX_OUTPUT, outputShape)],
    },
    metadata_props: [
      { key: 'weightsSha256', value: options.weightsSha256 },
      { key: 'exporter', value: ONNX_EXPORTER },
    ],
  };
}

function valueInfo(name: string, shape: Array<number | null>): ValueInfoProto {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: FLOAT,
        shape: { dim: shape.map((d, i) => (d === null ? { dim_param: i === 0 ? 'N' : `${name}_${i}` } : { dim_value: d })) },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Serialisation and files.

let modelType: Promise<protobuf.Type> | undefined;

function onnxModelType(): Promise<protobuf.Type> {
  modelType ??= (async () => {
    const root = new protobuf.Root();
    // keepCase: the official snake_case field names, so the objects above read like onnx.proto.
    await root.load(fileURLToPath(new URL('./onnx/onnx.proto', import.meta.url)), { keepCase: true });
    return root.lookupType('onnx.ModelProto');
  })();
  return modelType;
}

async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const handle = await open(temp, 'w', 0o644);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

const sidecarSchema = z.object({
  weightsSha256: z.string(),
  exporter: z.string(),
  opset: z.number().int(),
  createdAt: z.string(),
  /** Size of the .onnx file it describes: a replaced or truncated file no longer matches. */
  bytes: z.number().int().nonnegative(),
});
export type OnnxSidecar = z.infer<typeof sidecarSchema>;

export interface OnnxExportResult {
  path: string;
  bytes: number;
  sidecar: OnnxSidecar;
}

async function writeOnnx(proto: ModelProto, outFile: string, weightsSha256: string): Promise<OnnxExportResult> {
  const type = await onnxModelType();
  // encode() skips verify(): the objects are typed above, and verifying 100 MB is slow.
  const bytes = type.encode(proto).finish();
  const sidecarFile = `${outFile}.json`;
  // The old sidecar goes first: until the new one lands, nothing claims the file is current.
  await rm(sidecarFile, { force: true });
  await writeFileAtomic(outFile, bytes);
  const sidecar: OnnxSidecar = { weightsSha256, exporter: ONNX_EXPORTER, opset: ONNX_OPSET, createdAt: new Date().toISOString(), bytes: bytes.byteLength };
  await writeFileAtomic(sidecarFile, JSON.stringify(sidecar, null, 2) + '\n');
  return { path: outFile, bytes: bytes.byteLength, sidecar };
}

/**
 * Writes `model` as ONNX to `outFile` (atomically: temp file + rename), then the sidecar
 * `${outFile}.json`. Throws OnnxExportError, naming the layer, for anything it cannot translate;
 * nothing is written then.
 */
export async function exportOnnx(model: LayersModel, outFile: string, options: BuildOptions): Promise<OnnxExportResult> {
  return writeOnnx(buildModelProto(model, options), outFile, options.weightsSha256);
}

// ---------------------------------------------------------------------------------------------
// The store's model.onnx.

async function readSidecar(file: string): Promise<OnnxSidecar | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = sidecarSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Why the store's model.onnx cannot be used as is, or null when it is current. */
export async function onnxStaleness(modelDir: string): Promise<string | null> {
  const manifest = await readManifest(modelDir);
  if (!manifest) return `no ${MANIFEST_JSON} in ${modelDir}`;
  const file = path.join(modelDir, ONNX_FILE);
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return `${ONNX_FILE} is missing`;
  }
  const sidecar = await readSidecar(path.join(modelDir, ONNX_SIDECAR));
  if (!sidecar) return `${ONNX_SIDECAR} is missing or invalid`;
  if (sidecar.weightsSha256 !== manifest.weightsSha256) return `${ONNX_FILE} was exported from other weights (${sidecar.weightsSha256.slice(0, 12)}…, the store has ${manifest.weightsSha256.slice(0, 12)}…)`;
  if (sidecar.exporter !== ONNX_EXPORTER) return `${ONNX_FILE} was made by '${sidecar.exporter}', not the current '${ONNX_EXPORTER}'`;
  if (sidecar.bytes !== size) return `${ONNX_FILE} is ${size} bytes, its sidecar says ${sidecar.bytes}`;
  return null;
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

const WORKER_MARK = 'resnet-hub:onnx-export';
type WorkerInput = { [WORKER_MARK]: true; modelDir: string };
type WorkerResult = { type: 'done'; bytes: number } | { type: 'failed'; message: string };

function exportInWorker(modelDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const worker = spawnWorker(new URL(import.meta.url), { workerData: { [WORKER_MARK]: true, modelDir } satisfies WorkerInput });
    let settled = false;
    worker.once('message', (message: WorkerResult) => {
      settled = true;
      if (message.type === 'done') resolve();
      else reject(new Error(`ONNX export of ${modelDir} failed: ${message.message}`));
      void worker.terminate();
    });
    worker.once('error', (error) => {
      if (!settled) reject(error);
      settled = true;
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`ONNX export worker for ${modelDir} exited with code ${code} before finishing`));
      settled = true;
    });
  });
}

/** Inside the export worker: load the store on tfjs' cpu backend (weights only, no compute). */
async function runExportWorker(modelDir: string): Promise<WorkerResult> {
  const before = await readManifest(modelDir);
  if (!before) throw new ModelStoreError(modelDir, `no ${MANIFEST_JSON}`);
  const tf = await loadTfjs('cpu');
  const model = await loadLayersModelFromStore(tf, modelDir); // verifies the shards against the manifest
  let proto: ModelProto;
  try {
    proto = buildModelProto(model, { weightsSha256: before.weightsSha256 });
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
  const result = await writeOnnx(proto, path.join(modelDir, ONNX_FILE), before.weightsSha256);
  model.dispose();
  return { type: 'done', bytes: result.bytes };
}

// This module is also the export worker's entry point; only a worker spawned by exportInWorker
// (recognised by its workerData) runs the export on import.
if (!isMainThread && parentPort && (workerData as Partial<WorkerInput> | null)?.[WORKER_MARK] === true) {
  const port = parentPort;
  runExportWorker((workerData as WorkerInput).modelDir).then(
    (result) => port.postMessage(result satisfies WorkerResult),
    (error: unknown) => port.postMessage({ type: 'failed', message: error instanceof Error ? error.message : String(error) } satisfies WorkerResult),
  );
}
