/**
 * One translation per supported Keras layer class, into ONNX nodes (see layers-to-graph.ts).
 * Inference-only simplifications that change no result beyond float rounding live here:
 *  - ZeroPadding2D feeding only a Conv2D becomes that conv's `pads`; feeding only a
 *    MaxPooling2D, the pool's pads plus (when needed) an exact correction, see zeroPaddingMask;
 *  - 'same' padding is spelled out as explicit pads (TF puts the odd pixel bottom/right).
 */
import type { GraphBuilder } from './graph-builder.ts';
import { attrFloat, attrInt, attrInts, attrString } from './ir.ts';
import {
  batchNormAffine,
  configOf,
  numberPair,
  OnnxExportError,
  requireChannelAxis,
  requireChannelsLast,
  requireWeight,
  weightsOf,
  type Layer,
  type Step,
} from './keras-graph.ts';
import type { Translation } from './translation.ts';
import { samePadding, zeroPaddingMask } from './padding.ts';

type Emitter = (t: Translation, step: Step) => void;

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

const inputLayer: Emitter = (t, step) => {
  const out = step.outputs[0];
  if (t.inputShape.length === 4) {
    // The single layout change: everything downstream is NCHW.
    const nchw = t.g.name('input_nchw');
    t.g.node('Transpose', 'input_to_nchw', ['input'], [nchw], [attrInts('perm', [0, 3, 1, 2])]);
    t.define(out, { name: nchw, shape: out.shape });
  } else if (t.inputShape.length === 2) {
    t.define(out, { name: 'input', shape: out.shape });
  } else {
    throw new OnnxExportError(step.layer.name, `input rank ${t.inputShape.length} (only [N,H,W,C] or [N,features] are supported)`);
  }
};

const zeroPadding2d: Emitter = (t, step) => {
  const { layer } = step;
  const config = configOf(layer);
  const out = step.outputs[0];
  requireChannelsLast(layer, config);
  const input = t.plainInput(step, step.inputs[0]);
  const padding = config.padding;
  if (!Array.isArray(padding) || padding.length !== 2 || !padding.every((p) => Array.isArray(p) && p.length === 2)) {
    throw new OnnxExportError(layer.name, `unexpected padding ${JSON.stringify(padding)}`);
  }
  const [[top, bottom], [left, right]] = padding as [[number, number], [number, number]];
  const consumer = t.effectiveConsumer(out)?.className;
  if (consumer === 'Conv2D' || consumer === 'MaxPooling2D') {
    // Taken into the consumer's own padding (see there), never as a Pad node in front of it.
    t.define(out, { ...input, shape: out.shape, pendingPads: [top, left, bottom, right] });
  } else {
    // A Pad node is safe here: onnxruntime only fuses a Pad whose single reader is a
    // Conv/MaxPool/AveragePool (after removing no-ops, which we never emit between).
    const pads = t.g.int64(`${layer.name}/pads`, [0, 0, top, left, 0, 0, bottom, right]);
    const name = t.outName(step);
    t.g.node('Pad', layer.name, [input.name, pads], [name], [attrString('mode', 'constant')]);
    t.define(out, { name, shape: out.shape, nonNegative: input.nonNegative });
  }
};

const conv2d: Emitter = (t, step) => {
  const { layer } = step;
  const config = configOf(layer);
  const out = step.outputs[0];
  requireChannelsLast(layer, config);
  const input = t.valueOf(step, step.inputs[0]);
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

  // HWIO → OIHW (exact: no arithmetic; a BatchNorm behind is folded in by the next pass).
  const w = new Float32Array(co * ci * kh * kw);
  const src = kernel.values;
  for (let o = 0; o < co; o++) {
    for (let i = 0; i < ci; i++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          w[((o * ci + i) * kh + y) * kw + x] = src[((y * kw + x) * ci + i) * co + o];
        }
      }
    }
  }
  const b = bias ? Float32Array.from(bias) : new Float32Array(co);
  const wName = t.g.float(`${layer.name}/kernel`, [co, ci, kh, kw], w);
  const bName = t.g.float(`${layer.name}/bias`, [co], b);

  const activation = config.activation ?? 'linear';
  // A conv whose BatchNorm will be folded in leaves the layer's name to its node: the folded
  // conv then reads exactly as when the exporter folded in place (byte-identical model.onnx).
  const foldable = activation === 'linear' && t.soleConsumer(out)?.className === 'BatchNormalization';
  const name = foldable ? t.g.name(`${layer.name}/unfolded`) : t.outName(step);
  const convOut = activation === 'linear' ? name : t.g.name(`${layer.name}/linear`);
  t.g.node('Conv', layer.name, [input.name, wName, bName], [convOut], [
    attrInts('kernel_shape', [kh, kw]),
    attrInts('strides', [sh, sw]),
    attrInts('pads', pads),
    attrInts('dilations', [dh, dw]),
    attrInt('group', 1),
  ]);
  if (activation !== 'linear') emitActivation(t.g, layer, activation, convOut, name, 4);
  t.define(out, { name, shape: out.shape, nonNegative: NON_NEGATIVE_ACTIVATIONS.has(activation) });
};

const batchNormalization: Emitter = (t, step) => {
  const { layer } = step;
  const config = configOf(layer);
  const out = step.outputs[0];
  const input = t.plainInput(step, step.inputs[0]);
  const rank = step.inputs[0].shape.length;
  if (rank !== 4 && rank !== 2) throw new OnnxExportError(layer.name, `input rank ${rank} (2 or 4 are supported)`);
  requireChannelAxis(layer, config, rank);
  const channels = step.inputs[0].shape[rank - 1];
  if (channels === null) throw new OnnxExportError(layer.name, 'unknown channel count');
  // A per-channel Mul + Add with the factors kept in float64: folding them into a conv (next
  // pass) rounds the product to float32 once; float32-constants.ts rounds what is left.
  const { scale, shift } = batchNormAffine(layer, config, channels);
  const dims = rank === 4 ? [channels, 1, 1] : [channels];
  const scaleName = t.g.double(`${layer.name}/scale`, dims, scale);
  const shiftName = t.g.double(`${layer.name}/shift`, dims, shift);
  const scaled = t.g.name(`${layer.name}/scaled`);
  const name = t.outName(step);
  t.g.node('Mul', `${layer.name}/mul`, [input.name, scaleName], [scaled]);
  t.g.node('Add', `${layer.name}/add`, [scaled, shiftName], [name]);
  t.define(out, { name, shape: out.shape });
};

const activationLayer: Emitter = (t, step) => {
  const config = configOf(step.layer);
  const input = t.plainInput(step, step.inputs[0]);
  const name = t.outName(step);
  emitActivation(t.g, step.layer, config.activation, input.name, name, step.outputs[0].shape.length);
  t.define(step.outputs[0], { name, shape: step.outputs[0].shape, nonNegative: NON_NEGATIVE_ACTIVATIONS.has(config.activation) });
};

const relu: Emitter = (t, step) => {
  const config = configOf(step.layer);
  const input = t.plainInput(step, step.inputs[0]);
  if (config.maxValue !== undefined && config.maxValue !== null) {
    throw new OnnxExportError(step.layer.name, `ReLU with maxValue ${String(config.maxValue)} is not supported`);
  }
  const name = t.outName(step);
  t.g.node('Relu', step.layer.name, [input.name], [name]);
  t.define(step.outputs[0], { name, shape: step.outputs[0].shape, nonNegative: true });
};

const add: Emitter = (t, step) => {
  const inputs = step.inputs.map((x) => t.plainInput(step, x));
  const shapes = step.inputs.map((x) => JSON.stringify(x.shape.slice(1)));
  // Keras broadcasts some mismatched shapes; in NCHW that would broadcast differently.
  if (new Set(shapes).size !== 1) throw new OnnxExportError(step.layer.name, `Add of different shapes ${shapes.join(' + ')} is not supported`);
  const name = t.outName(step);
  t.g.node(inputs.length === 2 ? 'Add' : 'Sum', step.layer.name, inputs.map((v) => v.name), [name]);
  t.define(step.outputs[0], { name, shape: step.outputs[0].shape, nonNegative: inputs.every((v) => v.nonNegative) });
};

const maxPooling2d: Emitter = (t, step) => {
  const { layer } = step;
  const config = configOf(layer);
  const out = step.outputs[0];
  requireChannelsLast(layer, config);
  const input = t.valueOf(step, step.inputs[0]);
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
  const name = t.outName(step);
  const pooled = mask ? t.g.name(`${layer.name}/pool`) : name;
  t.g.node('MaxPool', layer.name, [input.name], [pooled], [
    attrInts('kernel_shape', [kh, kw]),
    attrInts('strides', [sh, sw]),
    attrInts('pads', zero.map((z, i) => z + same[i])),
  ]);
  if (mask) {
    const maskName = t.g.float(`${layer.name}/zero_padding_mask`, [1, 1, outShape[1] as number, outShape[2] as number], mask);
    t.g.node('Max', `${layer.name}/zero_padding`, [pooled, maskName], [name]);
  }
  t.define(out, { name, shape: out.shape, nonNegative: input.nonNegative });
};

const globalAveragePooling2d: Emitter = (t, step) => {
  requireChannelsLast(step.layer, configOf(step.layer));
  const input = t.plainInput(step, step.inputs[0]);
  const pooled = t.g.name(`${step.layer.name}/nchw`);
  const name = t.outName(step);
  t.g.node('GlobalAveragePool', step.layer.name, [input.name], [pooled]);
  t.g.node('Flatten', `${step.layer.name}/flatten`, [pooled], [name], [attrInt('axis', 1)]);
  t.define(step.outputs[0], { name, shape: step.outputs[0].shape, nonNegative: input.nonNegative });
};

const flatten: Emitter = (t, step) => {
  const { layer } = step;
  const input = t.plainInput(step, step.inputs[0]);
  const rank = step.inputs[0].shape.length;
  const name = t.outName(step);
  if (rank !== 4) throw new OnnxExportError(layer.name, `Flatten of a rank-${rank} tensor is not supported`);
  // Keras flattens NHWC order; go back to NHWC first so features line up with Dense weights.
  const nhwc = t.g.name(`${layer.name}/nhwc`);
  t.g.node('Transpose', `${layer.name}/to_nhwc`, [input.name], [nhwc], [attrInts('perm', [0, 2, 3, 1])]);
  t.g.node('Flatten', layer.name, [nhwc], [name], [attrInt('axis', 1)]);
  t.define(step.outputs[0], { name, shape: step.outputs[0].shape });
};

const dense: Emitter = (t, step) => {
  const { layer } = step;
  const config = configOf(layer);
  const input = t.plainInput(step, step.inputs[0]);
  if (step.inputs[0].shape.length !== 2) {
    throw new OnnxExportError(layer.name, `Dense on a rank-${step.inputs[0].shape.length} input is not supported (flatten or pool first)`);
  }
  const weights = weightsOf(layer);
  const kernel = requireWeight(layer, weights, 'kernel');
  const [units] = kernel.shape.slice(1);
  // [in, out] is already Gemm's B without transB: the weights are used as stored.
  const kName = t.g.float(`${layer.name}/kernel`, kernel.shape, kernel.values);
  const gemmInputs = [input.name, kName];
  if (config.useBias !== false) {
    gemmInputs.push(t.g.float(`${layer.name}/bias`, [units], requireWeight(layer, weights, 'bias').values));
  }
  const activation = config.activation ?? 'linear';
  const name = t.outName(step);
  const gemmOut = activation === 'linear' ? name : t.g.name(`${layer.name}/linear`);
  t.g.node('Gemm', layer.name, gemmInputs, [gemmOut], [attrFloat('alpha', 1), attrFloat('beta', 1), attrInt('transA', 0), attrInt('transB', 0)]);
  if (activation !== 'linear') emitActivation(t.g, layer, activation, gemmOut, name, 2);
  t.define(step.outputs[0], { name, shape: step.outputs[0].shape, nonNegative: NON_NEGATIVE_ACTIVATIONS.has(activation) });
};

export const EMITTERS: Readonly<Record<string, Emitter>> = {
  InputLayer: inputLayer,
  ZeroPadding2D: zeroPadding2d,
  Conv2D: conv2d,
  BatchNormalization: batchNormalization,
  Activation: activationLayer,
  ReLU: relu,
  Add: add,
  MaxPooling2D: maxPooling2d,
  GlobalAveragePooling2D: globalAveragePooling2d,
  Flatten: flatten,
  Dense: dense,
};
