/**
 * The last pass: the in-memory graph (ir.ts) ↔ ONNX protobuf bytes, through protobufjs and
 * the subset of onnx.proto kept next to this file. Reading back is what lets the quantizer
 * start from the model.onnx already in the store rather than from TF.js.
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

import { DataType } from './ir.ts';
import type { Attribute, Model, Node, Tensor, TensorData, ValueInfo } from './ir.ts';

let modelType: Promise<protobuf.Type> | undefined;

function onnxModelType(): Promise<protobuf.Type> {
  modelType ??= (async () => {
    const root = new protobuf.Root();
    // keepCase: the official snake_case field names, so the objects below read like onnx.proto.
    await root.load(fileURLToPath(new URL('./onnx.proto', import.meta.url)), { keepCase: true });
    return root.lookupType('onnx.ModelProto');
  })();
  return modelType;
}

/** The bytes of `array` itself (no copy): raw_data is little-endian, checked by the exporter. */
function bytesOf(array: TensorData): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

function valueInfoProto(v: ValueInfo): object {
  const tensorType: Record<string, unknown> = { elem_type: v.elem_type };
  if (v.shape) tensorType.shape = { dim: v.shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) };
  return { name: v.name, type: { tensor_type: tensorType } };
}

function nodeProto(n: Node): object {
  const proto: Record<string, unknown> = { name: n.name, op_type: n.op_type, input: n.input, output: n.output, attribute: n.attribute };
  if (n.domain) proto.domain = n.domain;
  return proto;
}

export async function encodeModel(model: Model): Promise<Uint8Array> {
  for (const t of model.graph.initializer) {
    if (t.data_type === DataType.DOUBLE) throw new Error(`internal: float64 constant ${t.name} reached the writer`);
  }
  const type = await onnxModelType();
  const proto = {
    ir_version: model.ir_version,
    opset_import: model.opset_import,
    producer_name: model.producer_name,
    producer_version: model.producer_version,
    doc_string: model.doc_string,
    graph: {
      name: model.graph.name,
      node: model.graph.node.map(nodeProto),
      initializer: model.graph.initializer.map((t) => ({ name: t.name, dims: t.dims, data_type: t.data_type, raw_data: bytesOf(t.data) })),
      input: model.graph.input.map(valueInfoProto),
      output: model.graph.output.map(valueInfoProto),
    },
    metadata_props: model.metadata_props,
  };
  // encode() skips verify(): the objects are typed, and verifying 100 MB is slow.
  return type.encode(proto).finish();
}

// ---------------------------------------------------------------------------------------------
// Reading back.

interface DecodedTensor {
  name: string;
  dims?: number[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
}
interface DecodedValueInfo {
  name: string;
  type?: { tensor_type?: { elem_type?: number; shape?: { dim?: Array<{ dim_value?: number; dim_param?: string }> } } };
}
interface DecodedModel {
  ir_version: number;
  opset_import?: Array<{ domain?: string; version: number }>;
  producer_name?: string;
  producer_version?: string;
  doc_string?: string;
  graph: {
    name?: string;
    node?: Array<Omit<Node, 'attribute' | 'input' | 'output'> & { input?: string[]; output?: string[]; attribute?: Attribute[] }>;
    initializer?: DecodedTensor[];
    input?: DecodedValueInfo[];
    output?: DecodedValueInfo[];
  };
  metadata_props?: Array<{ key: string; value: string }>;
}

const ARRAY_TYPES: Partial<Record<number, { bytes: number; make: (buffer: ArrayBuffer) => TensorData }>> = {
  [DataType.FLOAT]: { bytes: 4, make: (b) => new Float32Array(b) },
  [DataType.UINT8]: { bytes: 1, make: (b) => new Uint8Array(b) },
  [DataType.INT8]: { bytes: 1, make: (b) => new Int8Array(b) },
  [DataType.INT32]: { bytes: 4, make: (b) => new Int32Array(b) },
  [DataType.INT64]: { bytes: 8, make: (b) => new BigInt64Array(b) },
};

function tensorOf(t: DecodedTensor): Tensor {
  const kind = ARRAY_TYPES[t.data_type];
  if (!kind) throw new Error(`initializer ${t.name}: data type ${t.data_type} is not supported`);
  let data: TensorData;
  if (t.raw_data) {
    // A copy: the decoded bytes are a view into the file at any alignment.
    const copy = new ArrayBuffer(t.raw_data.byteLength);
    new Uint8Array(copy).set(t.raw_data);
    data = kind.make(copy);
  } else if (t.data_type === DataType.FLOAT) {
    data = Float32Array.from(t.float_data ?? []);
  } else {
    throw new Error(`initializer ${t.name}: only raw_data (or float_data) is supported`);
  }
  return { name: t.name, dims: t.dims ?? [], data_type: t.data_type as DataType, data };
}

function valueInfoOf(v: DecodedValueInfo): ValueInfo {
  const tensorType = v.type?.tensor_type;
  const dims = tensorType?.shape?.dim;
  return {
    name: v.name,
    elem_type: tensorType?.elem_type ?? DataType.FLOAT,
    ...(dims ? { shape: dims.map((d) => d.dim_param ?? d.dim_value ?? '?') } : {}),
  };
}

export async function decodeModel(bytes: Uint8Array): Promise<Model> {
  const type = await onnxModelType();
  const m = type.toObject(type.decode(bytes), { longs: Number }) as DecodedModel;
  return {
    ir_version: m.ir_version,
    opset_import: (m.opset_import ?? []).map((o) => ({ domain: o.domain ?? '', version: o.version })),
    producer_name: m.producer_name ?? '',
    producer_version: m.producer_version ?? '',
    doc_string: m.doc_string ?? '',
    graph: {
      name: m.graph.name ?? '',
      node: (m.graph.node ?? []).map((n) => ({ ...n, input: n.input ?? [], output: n.output ?? [], attribute: n.attribute ?? [] })),
      initializer: (m.graph.initializer ?? []).map(tensorOf),
      input: (m.graph.input ?? []).map(valueInfoOf),
      output: (m.graph.output ?? []).map(valueInfoOf),
    },
    metadata_props: m.metadata_props ?? [],
  };
}
