/**
 * The in-memory ONNX graph the exporter's passes hand each other: what onnx.proto describes,
 * but with tensor data as typed arrays (so a pass can read and rewrite weights) instead of
 * serialised bytes. Field names follow onnx.proto (snake_case) so the code reads like the spec;
 * protobuf.ts turns it into bytes and back.
 */

/** TensorProto.DataType values used here. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  /** Only between passes (BatchNorm factors before folding); never written to a file. */
  DOUBLE: 11,
} as const;
export type DataType = (typeof DataType)[keyof typeof DataType];

export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

export interface Tensor {
  name: string;
  dims: number[];
  data_type: DataType;
  data: TensorData;
}

/** AttributeProto.AttributeType */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;

export interface Attribute {
  name: string;
  type: number;
  i?: number;
  f?: number;
  s?: Uint8Array;
  ints?: number[];
}

export interface Node {
  name: string;
  op_type: string;
  /** Empty or absent: the default ONNX domain. */
  domain?: string;
  input: string[];
  output: string[];
  attribute: Attribute[];
}

export interface ValueInfo {
  name: string;
  elem_type: number;
  /** A number is a fixed size, a string a symbolic one (e.g. 'N' for the batch); undefined: unknown rank. */
  shape?: Array<number | string>;
}

export interface Graph {
  name: string;
  node: Node[];
  initializer: Tensor[];
  input: ValueInfo[];
  output: ValueInfo[];
}

export interface Model {
  ir_version: number;
  opset_import: Array<{ domain: string; version: number }>;
  producer_name: string;
  producer_version: string;
  doc_string: string;
  graph: Graph;
  metadata_props: Array<{ key: string; value: string }>;
}

export const attrInt = (name: string, i: number): Attribute => ({ name, type: AttributeType.INT, i });
export const attrInts = (name: string, ints: number[]): Attribute => ({ name, type: AttributeType.INTS, ints });
export const attrFloat = (name: string, f: number): Attribute => ({ name, type: AttributeType.FLOAT, f });
export const attrString = (name: string, s: string): Attribute => ({ name, type: AttributeType.STRING, s: new TextEncoder().encode(s) });

export function attribute(node: Node, name: string): Attribute | undefined {
  return node.attribute.find((a) => a.name === name);
}

/** Index of the graph: who produces and who reads each tensor, initializers by name. */
export interface GraphIndex {
  producer: Map<string, Node>;
  consumers: Map<string, Node[]>;
  initializers: Map<string, Tensor>;
  outputs: Set<string>;
}

export function indexGraph(graph: Graph): GraphIndex {
  const producer = new Map<string, Node>();
  const consumers = new Map<string, Node[]>();
  for (const node of graph.node) {
    for (const out of node.output) producer.set(out, node);
    for (const input of node.input) {
      if (input === '') continue;
      const list = consumers.get(input);
      if (list) list.push(node);
      else consumers.set(input, [node]);
    }
  }
  return {
    producer,
    consumers,
    initializers: new Map(graph.initializer.map((t) => [t.name, t])),
    outputs: new Set(graph.output.map((o) => o.name)),
  };
}

/** Hands out names unique across a graph: `base`, else `base_2`, `base_3`, ... */
export class NameScope {
  private readonly taken: Set<string>;

  constructor(taken: Iterable<string> = []) {
    this.taken = new Set(taken);
  }

  static of(graph: Graph): NameScope {
    const names = [...graph.input.map((v) => v.name), ...graph.output.map((v) => v.name), ...graph.initializer.map((t) => t.name)];
    for (const node of graph.node) names.push(node.name, ...node.input, ...node.output);
    return new NameScope(names);
  }

  name(base: string): string {
    let candidate = base;
    for (let i = 2; this.taken.has(candidate); i++) candidate = `${base}_${i}`;
    this.taken.add(candidate);
    return candidate;
  }
}
