/**
 * A client of the Open Inference Protocol over gRPC (KServe v2, `inference.GRPCInferenceService`):
 * any server that speaks it, a hub on its --grpc-port among them. Images go as a BYTES tensor of
 * encoded files, raw (`raw_input_contents`, the default: no protobuf field per byte) or typed;
 * answers come back as each image's top k classes (the classification extension) and, when
 * asked, every class's probability.
 */
import { Metadata, credentials, loadPackageDefinition } from '@grpc/grpc-js';
import type { CallOptions, Client, GrpcObject, ServiceClientConstructor, ServiceError as GrpcError } from '@grpc/grpc-js';
import { toPredictions, topK } from '../shared/labels.ts';
import { IMAGE_INPUT, OPEN_INFERENCE_MODEL, PROBABILITIES_OUTPUT } from '../shared/protocol/open-inference.ts';
import { loadOpenInferenceProto } from '../shared/protocol/open-inference-grpc.ts';
import type {
  InferOutputTensor,
  ModelInferRequest,
  ModelInferResponse,
  ModelMetadataResponse,
  ServerMetadataResponse,
} from '../shared/protocol/open-inference-grpc.ts';

export interface OpenInferenceGrpcOptions {
  /** Sent as `authorization: Bearer <token>` (a hub's --api-token). */
  token?: string;
  /** Largest answer accepted, in bytes (default 64 MiB). */
  maxReceiveBytes?: number;
}

export interface InferOptions {
  /** The top k classes of each image (the classification extension); default 3. */
  top?: number;
  /** Also every class's probability, one row of 1000 per image. */
  probabilities?: boolean;
  /** Send the images raw (default) or typed in `contents.bytes_contents`. */
  raw?: boolean;
  /** The gRPC deadline, from now. */
  deadlineMs?: number;
  /** Echoed back in the answer. */
  id?: string;
  model?: string;
  version?: string;
}

export interface ClassEntry {
  probability: number;
  index: number;
  label: string;
}

export interface InferResult {
  modelName: string;
  modelVersion: string;
  id: string;
  /** Per image, its top classes, most probable first. */
  classes: ClassEntry[][];
  /** Per image, every class's probability (when asked). */
  probabilities?: Float32Array[];
}

type Unary = (request: unknown, metadata: Metadata, options: CallOptions, callback: (error: GrpcError | null, response: unknown) => void) => void;

export class OpenInferenceGrpcClient {
  private readonly client: Client;
  private readonly metadata = new Metadata();

  /** `address`: host:port of the gRPC server. */
  constructor(address: string, options: OpenInferenceGrpcOptions = {}) {
    const proto = loadPackageDefinition(loadOpenInferenceProto()).inference as GrpcObject;
    const Service = proto.GRPCInferenceService as ServiceClientConstructor;
    this.client = new Service(address, credentials.createInsecure(), {
      'grpc.max_receive_message_length': options.maxReceiveBytes ?? 64 * 1024 * 1024,
      // Channelz's per-call books cost time on every call, and nothing here reads them.
      'grpc.enable_channelz': 0,
      // Transparent retries buffer every request in case it is sent again; the caller decides on resending.
      'grpc.enable_retries': 0,
      // A window that holds a whole image: no wait for a window update in the middle of one.
      'grpc-node.flow_control_window': 4 * 1024 * 1024,
    });
    if (options.token) this.metadata.set('authorization', `Bearer ${options.token}`);
  }

  /** Calls one of the service's methods by name (`ModelInfer`, `ServerLive`, …) with a message as the .proto gives it. */
  call<Response>(method: string, request: unknown, deadlineMs?: number): Promise<Response> {
    const unary = (this.client as unknown as Record<string, Unary>)[method];
    if (typeof unary !== 'function') return Promise.reject(new TypeError(`no method ${method}`));
    const options: CallOptions = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
    return new Promise((resolve, reject) => {
      unary.call(this.client, request, this.metadata, options, (error, response) => (error ? reject(error) : resolve(response as Response)));
    });
  }

  async serverLive(): Promise<boolean> {
    return (await this.call<{ live: boolean }>('ServerLive', {})).live;
  }

  async serverReady(): Promise<boolean> {
    return (await this.call<{ ready: boolean }>('ServerReady', {})).ready;
  }

  serverMetadata(): Promise<ServerMetadataResponse> {
    return this.call('ServerMetadata', {});
  }

  modelMetadata(model = OPEN_INFERENCE_MODEL, version = ''): Promise<ModelMetadataResponse> {
    return this.call('ModelMetadata', { name: model, version });
  }

  async modelReady(model = OPEN_INFERENCE_MODEL, version = ''): Promise<boolean> {
    return (await this.call<{ ready: boolean }>('ModelReady', { name: model, version })).ready;
  }

  /** Classifies `images` (encoded files) in one request. Rejects with the gRPC error (its `code` a gRPC status). */
  async infer(images: readonly Uint8Array[], options: InferOptions = {}): Promise<InferResult> {
    const raw = options.raw ?? true;
    const top = options.top ?? 3;
    // Every class's probability, or (the classification extension) the top k as "<p>:<index>:<label>".
    const outputs = options.probabilities ? [{ name: PROBABILITIES_OUTPUT }] : [{ name: PROBABILITIES_OUTPUT, parameters: { classification: { int64_param: top } } }];
    const request: ModelInferRequest = {
      model_name: options.model ?? OPEN_INFERENCE_MODEL,
      model_version: options.version ?? '',
      id: options.id ?? '',
      inputs: [{ name: IMAGE_INPUT, datatype: 'BYTES', shape: [images.length], ...(raw ? {} : { contents: { bytes_contents: [...images] } }) }],
      outputs,
      raw_input_contents: raw ? [lengthPrefixed(images)] : [],
    };
    const answer = await this.call<ModelInferResponse>('ModelInfer', request, options.deadlineMs);
    const result = { modelName: answer.model_name, modelVersion: answer.model_version, id: answer.id };
    if (!options.probabilities) return { ...result, classes: chunk(bytesElements(answer, 0).map(parseEntry), top) };
    const probabilities = fp32Rows(answer, 0);
    // The same labels the server's classification extension writes.
    const classes = probabilities.map((row) => toPredictions(topK(row, top)).map(({ probability, index, label }) => ({ probability, index, label })));
    return { ...result, classes, probabilities };
  }

  close(): void {
    this.client.close();
  }
}

/** BYTES elements as a raw content carries them: each a 4-byte little-endian length, then the bytes. */
export function lengthPrefixed(elements: readonly Uint8Array[]): Buffer {
  return Buffer.concat(elements.flatMap((element) => [Buffer.from(Uint32Array.of(element.length).buffer), element]));
}

/** Output `at`'s BYTES elements, raw or typed. */
export function bytesElements(response: ModelInferResponse, at: number): Buffer[] {
  const raw = response.raw_output_contents[at];
  if (raw === undefined) return (output(response, at).contents?.bytes_contents ?? []).map((element) => Buffer.from(element));
  const bytes = Buffer.from(raw);
  const elements: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; ) {
    const length = bytes.readUInt32LE(offset);
    elements.push(bytes.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return elements;
}

/** Output `at`'s FP32 values as rows of its last dimension, raw or typed. */
export function fp32Rows(response: ModelInferResponse, at: number): Float32Array[] {
  const tensor = output(response, at);
  const width = Number(tensor.shape[tensor.shape.length - 1]);
  const raw = response.raw_output_contents[at];
  const values = raw === undefined ? Float32Array.from(tensor.contents?.fp32_contents ?? []) : littleEndianFloats(Buffer.from(raw));
  const rows: Float32Array[] = [];
  for (let start = 0; start < values.length; start += width) rows.push(values.slice(start, start + width));
  return rows;
}

function output(response: ModelInferResponse, at: number): InferOutputTensor {
  const tensor = response.outputs[at];
  if (!tensor) throw new RangeError(`the answer has no output ${at}`);
  return tensor;
}

function littleEndianFloats(bytes: Buffer): Float32Array {
  const values = new Float32Array(bytes.length / 4);
  for (let i = 0; i < values.length; i++) values[i] = bytes.readFloatLE(4 * i);
  return values;
}

/** `"<probability>:<index>:<label>"`; the label may itself hold colons. */
export function parseEntry(entry: Buffer | string): ClassEntry {
  const [probability, index, ...label] = entry.toString().split(':');
  return { probability: Number(probability), index: Number(index), label: label.join(':') };
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let start = 0; start < items.length; start += size) out.push(items.slice(start, start + size));
  return out;
}
