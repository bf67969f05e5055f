/**
 * Reading a TF.js layers model as a graph of layer calls: their order, configuration and
 * weights, and which layers compute nothing at inference. No ONNX here; layers-to-graph.ts
 * translates what this reads.
 */
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs';

export type Layer = SymbolicTensor['sourceLayer'];
type LayerNode = Layer['inboundNodes'][number];

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
export interface Step {
  layer: Layer;
  node: LayerNode;
  className: string;
  inputs: SymbolicTensor[];
  outputs: SymbolicTensor[];
}

export function tensorKey(t: SymbolicTensor): string {
  return `${t.sourceLayer.name}\u0000${t.nodeIndex}\u0000${t.tensorIndex}`;
}

/** The layer calls that produce the model's outputs, dependencies first. */
export function topologicalSteps(model: LayersModel): Step[] {
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

export type Config = Record<string, unknown>;

export function configOf(layer: Layer): Config {
  return layer.getConfig() as Config;
}

export function numberPair(layer: Layer, config: Config, key: string): [number, number] {
  const v = config[key];
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0] as number, v[1] as number];
  throw new OnnxExportError(layer.name, `unexpected ${key} ${JSON.stringify(v)}`);
}

export function requireChannelsLast(layer: Layer, config: Config): void {
  const format = config.dataFormat ?? 'channelsLast';
  if (format !== 'channelsLast') throw new OnnxExportError(layer.name, `dataFormat '${String(format)}' (only channelsLast is supported)`);
}

/** Weights by their Keras name within the layer ('kernel', 'bias', 'gamma', 'moving_mean', ...). */
export function weightsOf(layer: Layer): Map<string, { shape: number[]; values: Float32Array }> {
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

export function requireWeight(layer: Layer, weights: ReturnType<typeof weightsOf>, key: string): { shape: number[]; values: Float32Array } {
  const w = weights.get(key);
  if (!w) throw new OnnxExportError(layer.name, `missing weight '${key}' (has: ${[...weights.keys()].join(', ') || 'none'})`);
  return w;
}

/** Per-channel y = x·scale + shift of an inference-mode BatchNormalization, in float64. */
export function batchNormAffine(layer: Layer, config: Config, channels: number): { scale: Float64Array; shift: Float64Array } {
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
export function requireChannelAxis(layer: Layer, config: Config, rank: number): void {
  const axis = config.axis;
  const axes = Array.isArray(axis) ? axis : [axis];
  if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== rank - 1)) {
    throw new OnnxExportError(layer.name, `BatchNormalization axis ${JSON.stringify(axis)} (only the channel axis ${rank - 1} / -1 is supported)`);
  }
}

/**
 * Layers that compute nothing at inference: linear Activation, Dropout, Flatten of a flat
 * tensor, and a BatchNormalization whose float32 scale is exactly 1 and shift exactly 0 (e.g.
 * freshly initialised with a tiny epsilon). They become no ONNX node at all.
 */
export function isIdentityLayer(step: Step): boolean {
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

