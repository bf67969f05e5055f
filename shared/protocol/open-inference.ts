/**
 * The Open Inference Protocol (KServe "v2") as this hub speaks it over REST: the one model, its
 * tensors, and the shape of an inference request. Written from the specification
 * (kserve/open-inference-protocol, inference_rest.md) and Triton's binary tensor and
 * classification extensions.
 *
 * The model `resnet50` takes `image`, a BYTES tensor of shape [N] whose elements are encoded image
 * files (JPEG, PNG, …; base64 strings in JSON, raw bytes in a binary section), or instead `input`,
 * an FP32 tensor [N, 224, 224, 3] of images already made into what the ONNX model takes (NHWC,
 * BGR, ImageNet means subtracted, no scaling: Keras' "caffe" preprocessing), and answers
 * `probabilities`, one row of 1000 per image. Asked with the classification extension
 * (`"parameters": {"classification": k}`), that output comes back as BYTES of shape [N, k]:
 * `"<probability>:<index>:<label>"`, the k most probable classes of each image, most probable first.
 */
import { z } from 'zod';

export const OPEN_INFERENCE_MODEL = 'resnet50';
export const IMAGE_INPUT = 'image';
/** The ONNX model's own input name. */
export const TENSOR_INPUT = 'input';
export const PROBABILITIES_OUTPUT = 'probabilities';
/** Triton's names for the two extensions, as server metadata lists them. */
export const OPEN_INFERENCE_EXTENSIONS = ['binary_tensor_data', 'classification'] as const;
/** Most images in one inference request. */
export const MAX_IMAGES_PER_REQUEST = 64;

export const TENSOR_DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES', 'BF16'] as const;
export type TensorDatatype = (typeof TENSOR_DATATYPES)[number];

const ParametersSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));
export type Parameters = z.infer<typeof ParametersSchema>;

const RequestInputSchema = z.object({
  name: z.string(),
  shape: z.array(z.int().min(0)),
  datatype: z.string(),
  parameters: ParametersSchema.optional(),
  /** Absent when the tensor is in a binary section (`parameters.binary_data_size`). */
  data: z.unknown().optional(),
});
export type RequestInput = z.infer<typeof RequestInputSchema>;

const RequestOutputSchema = z.object({ name: z.string(), parameters: ParametersSchema.optional() });
export type RequestOutput = z.infer<typeof RequestOutputSchema>;

export const InferenceRequestSchema = z.object({
  id: z.string().max(200).optional(),
  parameters: ParametersSchema.optional(),
  inputs: z.array(RequestInputSchema).min(1),
  outputs: z.array(RequestOutputSchema).optional(),
});
export type InferenceRequest = z.infer<typeof InferenceRequestSchema>;

export interface TensorMetadata {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface ResponseOutput {
  name: string;
  datatype: TensorDatatype;
  shape: number[];
  parameters?: Parameters;
  data?: Array<number | string>;
}

export interface InferenceResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: ResponseOutput[];
}

/** One classification entry as Triton's extension writes it. */
export function classificationEntry(probability: number, index: number, label: string): string {
  return `${probability.toPrecision(6)}:${index}:${label}`;
}
