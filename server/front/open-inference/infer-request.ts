/**
 * An Open Inference Protocol inference request read into what the hub runs (one image per
 * element of the `image` tensor), and the hub's replies written back as the response's outputs.
 * Everything a client can get wrong is a ServiceError saying what, so it is answered 400.
 */
import { MAX_TOP, NUM_CLASSES } from '../../../shared/labels.ts';
import type { ClassifyReply } from '../../../shared/protocol/classify.ts';
import { ServiceError } from '../../../shared/protocol/errors.ts';
import {
  IMAGE_INPUT,
  InferenceRequestSchema,
  MAX_IMAGES_PER_REQUEST,
  OPEN_INFERENCE_MODEL,
  PROBABILITIES_OUTPUT,
  classificationEntry,
} from '../../../shared/protocol/open-inference.ts';
import type { InferenceRequest, InferenceResponse, Parameters, RequestInput, ResponseOutput } from '../../../shared/protocol/open-inference.ts';
import { decodeBase64Image } from '../admission.ts';
import type { AdmissionLimits } from '../admission.ts';
import { binarySections, decodeBytesElements, encodeBytesElements, encodeFp32 } from './binary-tensors.ts';

/** How one output comes back: every class's FP32 probability, or (classification) the top k as BYTES. */
export interface AskedOutput {
  name: string;
  classification: number | undefined;
  binary: boolean;
}

/** What was asked of the model: the images, and how each output comes back. */
export interface ReadInference {
  id?: string;
  images: Uint8Array[];
  outputs: AskedOutput[];
}

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
  const request = parsed.data;
  const sections = binarySections(request.inputs, tail);
  const at = request.inputs.findIndex((input) => input.name === IMAGE_INPUT);
  const unknown = request.inputs.find((input) => input.name !== IMAGE_INPUT);
  if (unknown) throw new ServiceError('invalid_request', `model ${OPEN_INFERENCE_MODEL} has no input ${JSON.stringify(unknown.name)}; its input is ${IMAGE_INPUT} (BYTES, shape [N])`);
  if (at === -1 || request.inputs.length !== 1) throw new ServiceError('invalid_request', `send exactly one input, ${IMAGE_INPUT} (BYTES, shape [N])`);
  const images = readImages(request.inputs[at], sections[at], limits);
  return { id: request.id, images, outputs: readOutputs(request) };
}

function readImages(input: RequestInput, section: Buffer | undefined, limits: AdmissionLimits): Uint8Array[] {
  if (input.datatype !== 'BYTES') {
    throw new ServiceError('invalid_request', `input ${IMAGE_INPUT} is BYTES (encoded image files), not ${input.datatype}`);
  }
  if (input.shape.length !== 1 || input.shape[0] < 1 || input.shape[0] > MAX_IMAGES_PER_REQUEST) {
    throw new ServiceError('invalid_request', `input ${IMAGE_INPUT} has shape [N], N from 1 to ${MAX_IMAGES_PER_REQUEST}; got ${JSON.stringify(input.shape)}`);
  }
  const count = input.shape[0];
  const images = section ? decodeBytesElements(section, count, IMAGE_INPUT) : jsonImages(input.data, count, limits);
  for (const [i, image] of images.entries()) {
    if (image.length === 0) throw new ServiceError('invalid_request', `image ${i} is empty`);
    if (image.length > limits.maxImageBytes) throw new ServiceError('payload_too_large', `image ${i} is ${image.length} bytes; the limit is ${limits.maxImageBytes}`);
  }
  return images;
}

/** In JSON, each BYTES element is an encoded image file in base64 (as KServe's and MLServer's clients send them). */
function jsonImages(data: unknown, count: number, limits: AdmissionLimits): Uint8Array[] {
  const flat = Array.isArray(data) ? data.flat() : undefined;
  if (!flat || flat.length !== count || !flat.every((element) => typeof element === 'string')) {
    throw new ServiceError('invalid_request', `input ${IMAGE_INPUT}: data must be ${count} base64 strings (or a binary section)`);
  }
  return flat.map((element, i) => {
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

/**
 * The response to a request whose every image was answered; its binary sections in output
 * order. `allClasses[i]`: image i's 1000 probabilities, when an output asks for them.
 */
export function inferenceResponse(read: ReadInference, replies: readonly ClassifyReply[], allClasses: ReadonlyArray<Float32Array | undefined>): { response: InferenceResponse; sections: Buffer[] } {
  const sections: Buffer[] = [];
  const outputs = read.outputs.map((output): ResponseOutput => {
    if (output.classification === undefined) {
      const rows = replies.map((_, i) => allClasses[i] ?? new Float32Array(NUM_CLASSES).fill(Number.NaN));
      const shape = [replies.length, NUM_CLASSES];
      if (!output.binary) return { name: output.name, datatype: 'FP32', shape, data: rows.flatMap((row) => Array.from(row)) };
      const section = encodeFp32(rows);
      sections.push(section);
      return { name: output.name, datatype: 'FP32', shape, parameters: { binary_data_size: section.length } };
    }
    const k = output.classification;
    const entries = replies.flatMap((reply) => reply.predictions.slice(0, k).map((prediction) => classificationEntry(prediction.probability, prediction.index, prediction.label)));
    const shape = [replies.length, k];
    if (!output.binary) return { name: output.name, datatype: 'BYTES', shape, data: entries };
    const section = encodeBytesElements(entries);
    sections.push(section);
    return { name: output.name, datatype: 'BYTES', shape, parameters: { binary_data_size: section.length } };
  });
  // The weights that computed the answers; replies computed across a swap name the first.
  const response: InferenceResponse = { model_name: OPEN_INFERENCE_MODEL, model_version: replies[0].model.sha256, outputs };
  if (read.id !== undefined) response.id = read.id;
  return { response, sections };
}
