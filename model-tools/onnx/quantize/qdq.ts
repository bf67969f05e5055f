/**
 * The quantize pass: an fp32 graph plus calibrated activation ranges → a QDQ graph, the form
 * onnxruntime turns into integer kernels (QLinearConv, QLinearAdd, ...) when it loads it:
 *  - weights of int8 Conv/Gemm: int8, symmetric, one scale per output channel, behind a
 *    per-axis DequantizeLinear (opset 13);
 *  - their biases: int32 with scale s_input × s_weight[c], zero point 0;
 *  - activations: a QuantizeLinear → DequantizeLinear pair on each tensor an int8 op reads or
 *    writes, u8 or s8, asymmetric. A Conv/Add whose only reader is a Relu is quantized after the
 *    Relu (range from 0, zero point = the type's minimum), which onnxruntime folds into the op.
 *    MaxPool and Flatten outputs reuse their input's parameters, so they run on the codes; a
 *    MaxPool after an fp32 node is given a Q/DQ pair on its input for the same reason.
 * Nodes named in `keepFloat` keep fp32 weights and compute (their inputs may still be
 * dequantized values).
 */
import { attrInt, DataType, indexGraph, NameScope } from '../ir.ts';
import type { Model, Node, Tensor } from '../ir.ts';
import { activationParams, quantizeBias, quantizeWeightsPerChannel, type ActivationType, type QuantParams } from './quant-params.ts';

export interface QdqOptions {
  activationType: ActivationType;
  /** Names of Conv, Gemm or Add nodes that stay fp32. */
  keepFloat: ReadonlySet<string>;
}

/** What was quantized: the activation tensors (by their fp32 name) and the int8 nodes. */
export interface QdqPlan {
  tensors: Map<string, QuantParams>;
  /** Activation tensor → the tensor the graph reads instead (its DequantizeLinear output). */
  dequantized: Map<string, string>;
  int8Nodes: string[];
}

const WEIGHTED = new Set(['Conv', 'Gemm']);
/** Ops whose output is their input, rearranged: same quantization parameters. */
const SAME_PARAMS = new Set(['MaxPool', 'Flatten']);

/** Returns a new model (the input is not changed); `ranges` holds [low, high] per tensor name. */
export function quantizeQdq(model: Model, ranges: ReadonlyMap<string, [number, number]>, options: QdqOptions): { model: Model; plan: QdqPlan } {
  const graph = model.graph;
  const index = indexGraph(graph);
  const soleReader = (tensor: string): Node | undefined => {
    const readers = index.consumers.get(tensor) ?? [];
    return readers.length === 1 && !index.outputs.has(tensor) ? readers[0] : undefined;
  };
  /** The tensor to quantize for `node`'s output: after a Relu that alone reads it. */
  const outputSide = (node: Node): string => {
    const next = soleReader(node.output[0]);
    return next?.op_type === 'Relu' ? next.output[0] : node.output[0];
  };
  const isActivation = (tensor: string) => !index.initializers.has(tensor) && tensor !== '';

  // 1. Which tensors get a Q/DQ pair, and which nodes compute in int8.
  const marked = new Set<string>();
  const int8Nodes: Node[] = [];
  for (const node of graph.node) {
    if (options.keepFloat.has(node.name)) continue;
    if (WEIGHTED.has(node.op_type) && node.input.length >= 2 && index.initializers.has(node.input[1])) {
      marked.add(node.input[0]);
      marked.add(outputSide(node));
      int8Nodes.push(node);
    } else if (node.op_type === 'Add' && node.input.every(isActivation)) {
      for (const input of node.input) marked.add(input);
      marked.add(outputSide(node));
      int8Nodes.push(node);
    } else if (node.op_type === 'GlobalAveragePool') {
      marked.add(node.input[0]);
      marked.add(node.output[0]);
      int8Nodes.push(node);
    }
  }
  // Rearranging ops between quantized tensors run on the codes, with their input's parameters.
  for (const node of graph.node) {
    if (SAME_PARAMS.has(node.op_type) && marked.has(node.input[0])) marked.add(node.output[0]);
  }
  // A MaxPool whose output is quantized but whose input is not (after an fp32 conv) is moved
  // onto the codes too: quantizing is monotonic, so max then quantize equals quantize then max
  // with the output's parameters, and onnxruntime's fp32 NCHW MaxPool is slow here (4.7 ms of
  // 20 per image on noisy input, measured), where its u8 one is not.
  /** Pool input → the pool output whose calibrated range it takes. */
  const rangeOf = new Map<string, string>();
  for (const node of graph.node) {
    const input = node.input[0];
    if (node.op_type !== 'MaxPool' || !marked.has(node.output[0]) || marked.has(input) || !isActivation(input)) continue;
    if (soleReader(input) !== node) continue;
    marked.add(input);
    rangeOf.set(input, node.output[0]);
  }

  // 2. Parameters, in graph order so a SAME_PARAMS output finds its input's.
  const params = new Map<string, QuantParams>();
  const paramsOf = (tensor: string): QuantParams => {
    const range = ranges.get(rangeOf.get(tensor) ?? tensor);
    if (!range) throw new Error(`no calibrated range for tensor '${tensor}'`);
    return activationParams(range[0], range[1], options.activationType);
  };
  if (marked.has(graph.input[0]?.name)) params.set(graph.input[0].name, paramsOf(graph.input[0].name));
  for (const node of graph.node) {
    for (const out of node.output) {
      if (!marked.has(out)) continue;
      const shared = SAME_PARAMS.has(node.op_type) ? params.get(node.input[0]) : undefined;
      params.set(out, shared ?? paramsOf(out));
    }
  }

  // 3. The new graph.
  const names = NameScope.of(graph);
  const qType = options.activationType === 'u8' ? DataType.UINT8 : DataType.INT8;
  const initializers: Tensor[] = [];
  const nodes: Node[] = [];
  const dequantized = new Map<string, string>();
  const usedWeights = new Set<string>();
  const scalar = (base: string, value: number): string => {
    const name = names.name(base);
    initializers.push({ name, dims: [], data_type: DataType.FLOAT, data: Float32Array.of(value) });
    return name;
  };
  const zeroPoint = (base: string, value: number): string => {
    const name = names.name(base);
    initializers.push({ name, dims: [], data_type: qType, data: qType === DataType.UINT8 ? Uint8Array.of(value) : Int8Array.of(value) });
    return name;
  };
  const emitQdq = (tensor: string): void => {
    const p = params.get(tensor)!;
    const s = scalar(`${tensor}/scale`, p.scale);
    const z = zeroPoint(`${tensor}/zero_point`, p.zeroPoint);
    const q = names.name(`${tensor}/quantized`);
    const dq = names.name(`${tensor}/dequantized`);
    nodes.push({ name: names.name(`${tensor}/quantize`), op_type: 'QuantizeLinear', input: [tensor, s, z], output: [q], attribute: [] });
    nodes.push({ name: names.name(`${tensor}/dequantize`), op_type: 'DequantizeLinear', input: [q, s, z], output: [dq], attribute: [] });
    dequantized.set(tensor, dq);
  };
  /** A per-axis DequantizeLinear of constant codes; returns its output's name. */
  const constantDq = (base: string, codes: Tensor, scales: Float32Array, axis: number, zeroType: DataType): string => {
    initializers.push(codes);
    const s = names.name(`${base}/scale`);
    initializers.push({ name: s, dims: [scales.length], data_type: DataType.FLOAT, data: scales });
    const z = names.name(`${base}/zero_point`);
    const zeros = zeroType === DataType.INT8 ? new Int8Array(scales.length) : new Int32Array(scales.length);
    initializers.push({ name: z, dims: [scales.length], data_type: zeroType, data: zeros });
    const out = names.name(`${base}/dequantized`);
    nodes.push({ name: names.name(`${base}/dequantize`), op_type: 'DequantizeLinear', input: [codes.name, s, z], output: [out], attribute: [attrInt('axis', axis)] });
    return out;
  };

  for (const input of graph.input) if (params.has(input.name)) emitQdq(input.name);
  const int8Set = new Set(int8Nodes);
  for (const node of graph.node) {
    const input = node.input.map((x) => dequantized.get(x) ?? x);
    if (int8Set.has(node) && WEIGHTED.has(node.op_type)) {
      const weight = index.initializers.get(node.input[1])!;
      // Conv weights are [out, in, kh, kw]; Gemm's B is [in, out] unless transB.
      const transB = node.attribute.find((a) => a.name === 'transB')?.i === 1;
      const axis = node.op_type === 'Gemm' && !transB ? 1 : 0;
      const w = quantizeWeightsPerChannel(weight.data as Float32Array, weight.dims, axis);
      const wCodes: Tensor = { name: names.name(`${weight.name}/quantized`), dims: weight.dims, data_type: DataType.INT8, data: w.codes };
      input[1] = constantDq(weight.name, wCodes, w.scales, axis, DataType.INT8);
      usedWeights.add(weight.name);
      const bias = node.input[2] ? index.initializers.get(node.input[2]) : undefined;
      if (bias) {
        const b = quantizeBias(bias.data as Float32Array, params.get(node.input[0])!.scale, w.scales);
        const bCodes: Tensor = { name: names.name(`${bias.name}/quantized`), dims: bias.dims, data_type: DataType.INT32, data: b.codes };
        input[2] = constantDq(bias.name, bCodes, b.scales, 0, DataType.INT32);
        usedWeights.add(bias.name);
      }
    }
    nodes.push({ ...node, input });
    for (const out of node.output) if (params.has(out)) emitQdq(out);
  }

  // Float weights still read by an fp32 node are kept; those replaced by codes are dropped.
  const stillRead = new Set(nodes.flatMap((n) => n.input));
  const kept = graph.initializer.filter((t) => !usedWeights.has(t.name) || stillRead.has(t.name));
  return {
    model: { ...model, graph: { ...graph, node: nodes, initializer: [...kept, ...initializers] } },
    plan: { tensors: params, dequantized, int8Nodes: int8Nodes.map((n) => n.name) },
  };
}
