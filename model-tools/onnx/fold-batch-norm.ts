/**
 * Pass 2 of the export: folds an inference-mode BatchNormalization (a per-channel Mul + Add
 * with float64 factors, as layers-to-graph.ts emits it) into the Conv in front of it:
 *   W'[o] = W[o]·scale[o],  b'[o] = b[o]·scale[o] + shift[o]
 * computed in float64 and rounded to float32 once. Only when nothing else reads the conv's or
 * the Mul's output (a graph output included), so no unfolded value is lost.
 */
import { DataType, indexGraph } from './ir.ts';
import type { Model, Node, Tensor } from './ir.ts';

/** The per-channel float64 factor of `node` (input 1), if it is one of length `channels`. */
function channelFactor(node: Node, initializers: Map<string, Tensor>, channels: number): Float64Array | undefined {
  const t = initializers.get(node.input[1]);
  if (!t || t.data_type !== DataType.DOUBLE) return undefined;
  const [c, ...rest] = t.dims;
  if (c !== channels || rest.some((d) => d !== 1)) return undefined;
  return t.data as Float64Array;
}

/** Folds in place; returns how many BatchNorms were folded. */
export function foldBatchNorm(model: Model): number {
  const graph = model.graph;
  const index = indexGraph(graph);
  const only = (tensor: string): Node | undefined => {
    const readers = index.consumers.get(tensor) ?? [];
    return readers.length === 1 && !index.outputs.has(tensor) ? readers[0] : undefined;
  };
  const dropNodes = new Set<Node>();
  const dropTensors = new Set<string>();
  let folded = 0;
  for (const conv of graph.node) {
    if (conv.op_type !== 'Conv' || conv.input.length < 3) continue;
    const weight = index.initializers.get(conv.input[1]);
    const bias = index.initializers.get(conv.input[2]);
    if (!weight || !bias || weight.data_type !== DataType.FLOAT || bias.data_type !== DataType.FLOAT) continue;
    const channels = weight.dims[0];
    const mul = only(conv.output[0]);
    if (mul?.op_type !== 'Mul' || mul.input[0] !== conv.output[0]) continue;
    const add = only(mul.output[0]);
    if (add?.op_type !== 'Add' || add.input[0] !== mul.output[0]) continue;
    const scale = channelFactor(mul, index.initializers, channels);
    const shift = channelFactor(add, index.initializers, channels);
    // A factor shared with another node must stay; none of ours is, but a graph may differ.
    if (!scale || !shift || (index.consumers.get(mul.input[1])?.length ?? 0) > 1 || (index.consumers.get(add.input[1])?.length ?? 0) > 1) continue;

    const w = weight.data as Float32Array;
    const b = bias.data as Float32Array;
    const perChannel = w.length / channels;
    // Fresh arrays: the conv's may still be views of the caller's weights.
    const w2 = new Float32Array(w.length);
    const b2 = new Float32Array(channels);
    for (let o = 0; o < channels; o++) {
      const s = scale[o];
      for (let j = o * perChannel; j < (o + 1) * perChannel; j++) w2[j] = w[j] * s;
      b2[o] = b[o] * s + shift[o];
    }
    weight.data = w2;
    bias.data = b2;
    conv.output = [add.output[0]];
    dropNodes.add(mul).add(add);
    dropTensors.add(mul.input[1]).add(add.input[1]);
    folded++;
  }
  graph.node = graph.node.filter((n) => !dropNodes.has(n));
  graph.initializer = graph.initializer.filter((t) => !dropTensors.has(t.name));
  return folded;
}
