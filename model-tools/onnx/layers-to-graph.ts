/**
 * Pass 1 of the export: a TF.js layers model → the ONNX graph (ir.ts), one layer call at a time.
 *
 * The walk follows each layer's inbound nodes, so any model made of the supported layer classes
 * exports, not just ResNet50. The graph is NCHW inside (what onnxruntime's CPU kernels are
 * fastest at) behind ONE Transpose of the NHWC input. Translation is literal except where the
 * Keras graph itself must be read to be exact (padding, see layer-emitters.ts); every
 * BatchNormalization comes out as a per-channel Mul + Add with float64 factors, which the next
 * pass (fold-batch-norm.ts) folds into the convolution in front of it.
 */
import os from 'node:os';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs';

import { ONNX_EXPORTER, ONNX_INPUT, ONNX_OUTPUT } from '../../model-store/derived-files.ts';
import { GraphBuilder } from './graph-builder.ts';
import { attrInts, DataType, type Model, type ValueInfo } from './ir.ts';
import { isIdentityLayer, OnnxExportError, tensorKey, topologicalSteps, type Step } from './keras-graph.ts';
import { EMITTERS } from './layer-emitters.ts';
import type { Translation, Value } from './translation.ts';

/** Opset 13: every op used here exists in it unchanged since, and onnxruntime optimises it fully. */
export const ONNX_OPSET = 13;
/** The IR version that goes with opset 13 (ONNX 1.8). */
export const ONNX_IR_VERSION = 7;

export interface BuildOptions {
  weightsSha256: string;
}

export function valueInfo(name: string, shape: Array<number | null>): ValueInfo {
  return { name, elem_type: DataType.FLOAT, shape: shape.map((d, i) => (d === null ? (i === 0 ? 'N' : `${name}_${i}`) : d)) };
}

/** The ONNX graph of `model`, BatchNorms unfolded (weights referenced, not copied, where possible). */
export function layersToGraph(model: LayersModel, options: BuildOptions): Model {
  if (os.endianness() !== 'LE') throw new Error('ONNX raw_data is little-endian; this exporter assumes a little-endian host');
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new Error(`only single-input, single-output models can be exported (this one has ${model.inputs.length} inputs, ${model.outputs.length} outputs)`);
  }
  const steps = topologicalSteps(model);
  const outputKey = tensorKey(model.outputs[0]);

  // Who reads each tensor: folding padding into a conv is only valid when nothing else
  // (including the model output) needs the unpadded value.
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

  const g = new GraphBuilder([ONNX_INPUT, ONNX_OUTPUT]);
  const values = new Map<string, Value>();
  const valueOf = (step: Step, t: SymbolicTensor): Value => {
    const v = values.get(tensorKey(t));
    if (!v) throw new OnnxExportError(step.layer.name, `input ${t.name} was not produced by an exported layer`);
    return v;
  };
  const inputShape = model.inputs[0].shape;
  const translation: Translation = {
    g,
    valueOf,
    plainInput(step, t) {
      const v = valueOf(step, t);
      if (v.pendingPads) throw new Error(`internal: deferred padding reached ${step.layer.name}`);
      return v;
    },
    outName(step, index = 0) {
      const t = step.outputs[index];
      return g.name(t.nodeIndex === 0 && t.tensorIndex === 0 ? step.layer.name : `${step.layer.name}:${t.nodeIndex}:${t.tensorIndex}`);
    },
    define(t, value) {
      values.set(tensorKey(t), value);
    },
    soleConsumer,
    effectiveConsumer(t) {
      let step = soleConsumer(t);
      while (step && isPassThrough(step)) step = soleConsumer(step.outputs[0]);
      return step;
    },
    inputShape,
  };

  for (const step of steps) {
    const { layer, className } = step;
    if (className !== 'InputLayer' && step.inputs.length === 0) throw new OnnxExportError(layer.name, 'has no inputs');
    const out = step.outputs[0];
    if (isPassThrough(step)) {
      // Same values, same layout: the Keras tensor is its input's ONNX tensor (padding included).
      translation.define(out, { ...valueOf(step, step.inputs[0]), shape: out.shape });
      continue;
    }
    const emit = EMITTERS[className];
    if (!emit) throw new OnnxExportError(layer.name, `layer class ${className} is not supported`);
    emit(translation, step);
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
      input: [valueInfo(ONNX_INPUT, inputShape)],
      output: [valueInfo(ONNX_OUTPUT, outputShape)],
    },
    metadata_props: [
      { key: 'weightsSha256', value: options.weightsSha256 },
      { key: 'exporter', value: ONNX_EXPORTER },
    ],
  };
}
