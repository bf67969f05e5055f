/**
 * An Open Inference Protocol inference request read into what the hub runs (one image per
 * element of the `image` tensor), and the hub's replies written back as the response's outputs.
 * Everything a client can get wrong is a ServiceError saying what, so it is answered 400.
 */
import { INPUT_CHANNELS, INPUT_SIZE, INPUT_VALUES_PER_IMAGE } from '../../../shared/caffe.ts';
import { MAX_TOP, NUM_CLASSES } from '../../../shared/labels.ts';
import type { ClassifyReply } from '../../../shared/protocol/classify.ts';
import { ServiceError } from '../../../shared/protocol/errors.ts';
import {
  IMAGE_INPUT,
  InferenceRequestSchema,
  MAX_IMAGES_PER_REQUEST,
  OPEN_INFERENCE_MODEL,
  PROBABILITIES_OUTPUT,
  TENSOR_INPUT,
  classificationEntry,
} from '../../../shared/protocol/open-inference.ts';
import type { InferenceRequest, InferenceResponse, Parameters, RequestInput, ResponseOutput } from '../../../shared/protocol/open-inference.ts';
import { decodeBase64Image, maxJsonBytes } from '../admission.ts';
import type { AdmissionLimits } from '../admission.ts';
import { binarySections, decodeBytesElements, encodeBytesElements, encodeFp32 } from './binary-tensors.ts';

/** How one output comes back: every class's FP32 probability, or (classification) the top k as BYTES. */
export interface AskedOutput {
  name: string;
  classification: number | undefined;
  binary: boolean;
}

/**
 * Largest inference request read, whichever transport: two single-image JSON requests' worth of
 * bytes, so many small images or one large one, but never many large ones.
 */
export function maxInferenceBytes(limits: AdmissionLimits): number {
  return 2 * maxJsonBytes(limits);
}

/** What was asked of the model: the images (encoded files, or the model's float input), and how each output comes back. */
export interface ReadInference {
  id?: string;
  /** Encoded image files (the `image` input); empty when the request sent `tensors`. */
  images: Uint8Array[];
  /** Images as the model's float input (the `input` input), 150528 values each. */
  tensors: Float32Array[];
  outputs: AskedOutput[];
}

/** How many images a request holds, whichever input carries them. */
export function imageCount(read: ReadInference): number {
  return read.images.length + read.tensors.length;
}

/** A REST request body's JSON header and binary tail, read. */
export function readInferenceRequest(json: Buffer, tail: Buffer, limits: AdmissionLimits): ReadInference {
  let value: unknown;
  try {
    value = JSON.parse(json.toString('utf8'));
  } catch {
    throw new ServiceError('invalid_json', 'the inference request header is not valid JSON');
  }
  const parsed = InferenceRequestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ServiceError('invalid_request', `${issue.path.join('.') || 'the request'}: ${issue.message}`);
  }
  return readInference(parsed.data, binarySections(parsed.data.inputs, tail), limits);
}

/**
 * A request as either transport delivers it: `sections[i]` holds input i's data when it came as
 * bytes apart from the request (a REST binary section, a gRPC raw content), else its `data` does.
 */
export function readInference(request: InferenceRequest, sections: ReadonlyArray<Buffer | undefined>, limits: AdmissionLimits): ReadInference {
  const unknown = request.inputs.find((input) => input.name !== IMAGE_INPUT && input.name !== TENSOR_INPUT);
  if (unknown) throw new ServiceError('invalid_request', `model ${OPEN_INFERENCE_MODEL} has no input ${JSON.stringify(unknown.name)}; ${INPUTS}`);
  if (request.inputs.length !== 1) throw new ServiceError('invalid_request', `send exactly one input: ${INPUTS}`);
  const [input] = request.inputs;
  const outputs = readOutputs(request);
  if (input.name === TENSOR_INPUT) return { id: request.id, images: [], tensors: readTensors(input, sections[0]), outputs };
  return { id: request.id, images: readImages(input, sections[0], limits), tensors: [], outputs };
}

const INPUTS = `its inputs are ${IMAGE_INPUT} (BYTES, shape [N], encoded image files) or ${TENSOR_INPUT} (FP32, shape [N, ${INPUT_SIZE}, ${INPUT_SIZE}, ${INPUT_CHANNELS}], the model's own input)`;

/** The FP32 input: N images as the ONNX model takes them, every value finite. */
function readTensors(input: RequestInput, section: Buffer | undefined): Float32Array[] {
  if (input.datatype !== 'FP32') throw new ServiceError('invalid_request', `input ${TENSOR_INPUT} is FP32, not ${input.datatype}`);
  const [count, ...image] = input.shape;
  if (input.shape.length !== 4 || image.join() !== `${INPUT_SIZE},${INPUT_SIZE},${INPUT_CHANNELS}` || count < 1 || count > MAX_IMAGES_PER_REQUEST) {
    throw new ServiceError(
      'invalid_request',
      `input ${TENSOR_INPUT} has shape [N, ${INPUT_SIZE}, ${INPUT_SIZE}, ${INPUT_CHANNELS}], N from 1 to ${MAX_IMAGES_PER_REQUEST}; got ${JSON.stringify(input.shape)}`,
    );
  }
  const expected = count * INPUT_VALUES_PER_IMAGE;
  const values = section ? decodeFp32(section, expected) : jsonFloats(input.data, expected);
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new ServiceError('invalid_request', `input ${TENSOR_INPUT}: value ${i} is not a finite number`);
  }
  return Array.from({ length: count }, (_, i) => values.subarray(i * INPUT_VALUES_PER_IMAGE, (i + 1) * INPUT_VALUES_PER_IMAGE));
}

function decodeFp32(section: Buffer, expected: number): Float32Array {
  if (section.length !== expected * 4) throw new ServiceError('invalid_request', `input ${TENSOR_INPUT}: ${section.length} bytes of FP32 data for ${expected} values`);
  const values = new Float32Array(expected);
  for (let i = 0; i < expected; i++) values[i] = section.readFloatLE(4 * i);
  return values;
}

/** JSON data (flat or nested, as the specification allows) or gRPC's fp32_contents. */
function jsonFloats(data: unknown, expected: number): Float32Array {
  const flat: unknown[] | undefined = Array.isArray(data) ? data.flat(4) : undefined;
  if (!flat || flat.length !== expected || !flat.every((value) => typeof value === 'number')) {
    throw new ServiceError('invalid_request', `input ${TENSOR_INPUT}: send ${expected} numbers, as its shape says`);
  }
  return Float32Array.from(flat as number[]);
}

function readImages(input: RequestInput, section: Buffer | undefined, limits: AdmissionLimits): Uint8Array[] {
  if (input.datatype !== 'BYTES') {
    throw new ServiceError('invalid_request', `input ${IMAGE_INPUT} is BYTES (encoded image files), not ${input.datatype}`);
  }
  if (input.shape.length !== 1 || input.shape[0] < 1 || input.shape[0] > MAX_IMAGES_PER_REQUEST) {
    throw new ServiceError('invalid_request', `input ${IMAGE_INPUT} has shape [N], N from 1 to ${MAX_IMAGES_PER_REQUEST}; got ${JSON.stringify(input.shape)}`);
  }
  const count = input.shape[0];
  const images = section ? decodeBytesElements(section, count, IMAGE_INPUT) : elementImages(input.data, count, limits);
  for (const [i, image] of images.entries()) {
    if (image.length === 0) throw new ServiceError('invalid_request', `image ${i} is empty`);
    if (image.length > limits.maxImageBytes) throw new ServiceError('payload_too_large', `image ${i} is ${image.length} bytes; the limit is ${limits.maxImageBytes}`);
  }
  return images;
}

/**
 * The elements of `data`: in JSON each is an encoded image file in base64 (as KServe's and
 * MLServer's clients send them); in gRPC's typed contents, the file's bytes.
 */
function elementImages(data: unknown, count: number, limits: AdmissionLimits): Uint8Array[] {
  const flat: unknown[] | undefined = Array.isArray(data) ? data.flat() : undefined;
  if (!flat || flat.length !== count || !flat.every((element) => typeof element === 'string' || element instanceof Uint8Array)) {
    throw new ServiceError('invalid_request', `input ${IMAGE_INPUT}: send ${count} images, as its shape says (base64 strings in JSON data, bytes in gRPC contents, or a binary section)`);
  }
  return flat.map((element, i) => {
    if (element instanceof Uint8Array) return element;
    try {
      return decodeBase64Image(element as string, limits);
    } catch (error) {
      throw error instanceof ServiceError ? new ServiceError(error.code, `image ${i}: ${error.message}`) : error;
    }
  });
}

function readOutputs(request: InferenceRequest): AskedOutput[] {
  const binaryByDefault = request.parameters?.binary_data_output === true;
  // Without a list, every output as it is: the FP32 probabilities.
  const asked = request.outputs?.length ? request.outputs : [{ name: PROBABILITIES_OUTPUT }];
  return asked.map((output) => {
    if (output.name !== PROBABILITIES_OUTPUT) {
      throw new ServiceError('invalid_request', `model ${OPEN_INFERENCE_MODEL} has no output ${JSON.stringify(output.name)}; its output is ${PROBABILITIES_OUTPUT}`);
    }
    return { name: output.name, classification: classificationOf(output.parameters), binary: binaryOf(output.parameters, binaryByDefault) };
  });
}

function classificationOf(parameters: Parameters | undefined): number | undefined {
  const k = parameters?.classification;
  if (k === undefined) return undefined;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > MAX_TOP) {
    throw new ServiceError('invalid_top', `classification must be an integer from 1 to ${MAX_TOP}`);
  }
  return k;
}

function binaryOf(parameters: Parameters | undefined, byDefault: boolean): boolean {
  const binary = parameters?.binary_data;
  return typeof binary === 'boolean' ? binary : byDefault;
}

/** Whether any output asks for every class's probability, which only some executors compute. */
export function wantsAllClasses(read: ReadInference): boolean {
  return read.outputs.some((output) => output.classification === undefined);
}

/** One output of an answered request, before either transport writes it. */
export type OutputTensor =
  | { name: string; datatype: 'FP32'; shape: number[]; binary: boolean; rows: Float32Array[] }
  | { name: string; datatype: 'BYTES'; shape: number[]; binary: boolean; entries: string[] };

/** An answered request: the weights that computed it, and each output asked for. */
export interface AnsweredInference {
  id?: string;
  modelVersion: string;
  outputs: OutputTensor[];
}

/** `allClasses[i]`: image i's probabilities of every class, when an output asks for them. */
export function answeredInference(read: ReadInference, replies: readonly ClassifyReply[], allClasses: ReadonlyArray<Float32Array | undefined>): AnsweredInference {
  const outputs = read.outputs.map((output): OutputTensor => {
    if (output.classification === undefined) {
      const rows = replies.map((_, i) => allClasses[i] ?? new Float32Array(NUM_CLASSES).fill(Number.NaN));
      return { name: output.name, datatype: 'FP32', shape: [replies.length, NUM_CLASSES], binary: output.binary, rows };
    }
    const k = output.classification;
    const entries = replies.flatMap((reply) => reply.predictions.slice(0, k).map((prediction) => classificationEntry(prediction.probability, prediction.index, prediction.label)));
    return { name: output.name, datatype: 'BYTES', shape: [replies.length, k], binary: output.binary, entries };
  });
  // The weights that computed every answer (run-inference.ts computes again what a swap left on older ones).
  return { ...(read.id !== undefined ? { id: read.id } : {}), modelVersion: replies[0].model.sha256, outputs };
}

/** The REST response: JSON, with the outputs asked for in binary as sections after it, in output order. */
export function inferenceResponse(answered: AnsweredInference): { response: InferenceResponse; sections: Buffer[] } {
  const sections: Buffer[] = [];
  const outputs = answered.outputs.map((output): ResponseOutput => {
    const { name, datatype, shape } = output;
    if (!output.binary) return { name, datatype, shape, data: output.datatype === 'FP32' ? output.rows.flatMap((row) => Array.from(row)) : output.entries };
    const section = output.datatype === 'FP32' ? encodeFp32(output.rows) : encodeBytesElements(output.entries);
    sections.push(section);
    return { name, datatype, shape, parameters: { binary_data_size: section.length } };
  });
  const response: InferenceResponse = { model_name: OPEN_INFERENCE_MODEL, model_version: answered.modelVersion, outputs };
  if (answered.id !== undefined) response.id = answered.id;
  return { response, sections };
}
