/**
 * An Open Inference Protocol inference request read into what the hub runs (one image per
 * element of the `image` tensor), and the hub's replies written back as the response's outputs.
 * Everything a client can get wrong is a ServiceError saying what, so it is answered 400.
 */
import { MAX_TOP } from '../../../shared/labels.ts';
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
import type { InferenceRequest, InferenceResponse, Parameters, RequestInput } from '../../../shared/protocol/open-inference.ts';
import { decodeBase64Image } from '../admission.ts';
import type { AdmissionLimits } from '../admission.ts';
import { binarySections, decodeBytesElements, encodeBytesElements } from './binary-tensors.ts';

/** What was asked of the model: the images, and how each output comes back. */
export interface ReadInference {
  id?: string;
  images: Uint8Array[];
  outputs: Array<{ name: string; classification: number; binary: boolean }>;
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

function readOutputs(request: InferenceRequest): ReadInference['outputs'] {
  const binaryByDefault = request.parameters?.binary_data_output === true;
  // The spec's default (every output, as it is) is the FP32 probabilities, which need every
  // executor to send all 1000 of them; until then a request says how many classes it wants.
  const asked = request.outputs ?? [{ name: PROBABILITIES_OUTPUT }];
  return asked.map((output) => {
    if (output.name !== PROBABILITIES_OUTPUT) {
      throw new ServiceError('invalid_request', `model ${OPEN_INFERENCE_MODEL} has no output ${JSON.stringify(output.name)}; its output is ${PROBABILITIES_OUTPUT}`);
    }
    return { name: output.name, classification: classificationOf(output.parameters), binary: binaryOf(output.parameters, binaryByDefault) };
  });
}

function classificationOf(parameters: Parameters | undefined): number {
  const k = parameters?.classification;
  if (k === undefined) {
    throw new ServiceError(
      'invalid_request',
      `output ${PROBABILITIES_OUTPUT} is served through the classification extension for now: ask for it with "parameters": {"classification": k}, k from 1 to ${MAX_TOP}`,
    );
  }
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > MAX_TOP) {
    throw new ServiceError('invalid_top', `classification must be an integer from 1 to ${MAX_TOP}`);
  }
  return k;
}

function binaryOf(parameters: Parameters | undefined, byDefault: boolean): boolean {
  const binary = parameters?.binary_data;
  return typeof binary === 'boolean' ? binary : byDefault;
}

/** The response to a request whose every image was answered; its binary sections in output order. */
export function inferenceResponse(read: ReadInference, replies: readonly ClassifyReply[]): { response: InferenceResponse; sections: Buffer[] } {
  const sections: Buffer[] = [];
  const outputs = read.outputs.map((output) => {
    const entries = replies.flatMap((reply) =>
      reply.predictions.slice(0, output.classification).map((prediction) => classificationEntry(prediction.probability, prediction.index, prediction.label)),
    );
    const shape = [replies.length, output.classification];
    if (!output.binary) return { name: output.name, datatype: 'BYTES' as const, shape, data: entries };
    const section = encodeBytesElements(entries);
    sections.push(section);
    return { name: output.name, datatype: 'BYTES' as const, shape, parameters: { binary_data_size: section.length } };
  });
  // The weights that computed the answers; replies computed across a swap name the first.
  const response: InferenceResponse = { model_name: OPEN_INFERENCE_MODEL, model_version: replies[0].model.sha256, outputs };
  if (read.id !== undefined) response.id = read.id;
  return { response, sections };
}
