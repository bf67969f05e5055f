/**
 * The Open Inference Protocol's gRPC service (open_inference_grpc.proto beside this file), as
 * @grpc/proto-loader reads it for the hub and the client library alike, and the messages' shapes
 * as they arrive with these loader options (field names as in the .proto, 64-bit integers as
 * numbers, absent fields as their defaults, a oneof's chosen field named in `parameter_choice`).
 * Node only: the browser never loads it.
 */
import { fileURLToPath } from 'node:url';
import { loadSync } from '@grpc/proto-loader';
import type { PackageDefinition } from '@grpc/proto-loader';

export const OPEN_INFERENCE_PROTO = fileURLToPath(new URL('./open_inference_grpc.proto', import.meta.url));
export const OPEN_INFERENCE_SERVICE = 'inference.GRPCInferenceService';

export function loadOpenInferenceProto(): PackageDefinition {
  return loadSync(OPEN_INFERENCE_PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
}

export interface InferParameter {
  bool_param?: boolean;
  int64_param?: number;
  string_param?: string;
  double_param?: number;
  uint64_param?: number;
  /** Which of the above is set (as read; ignored when sending). */
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';
}

export interface InferTensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: number[];
  uint_contents?: number[];
  uint64_contents?: number[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

export interface InferInputTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, InferParameter>;
  contents?: InferTensorContents | null;
}

export interface InferRequestedOutputTensor {
  name: string;
  parameters?: Record<string, InferParameter>;
}

export interface ModelInferRequest {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, InferParameter>;
  inputs: InferInputTensor[];
  outputs?: InferRequestedOutputTensor[];
  raw_input_contents?: Uint8Array[];
}

export interface InferOutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, InferParameter>;
  contents?: InferTensorContents | null;
}

export interface ModelInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  parameters?: Record<string, InferParameter>;
  outputs: InferOutputTensor[];
  raw_output_contents: Uint8Array[];
}

export interface TensorMetadataMessage {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadataMessage[];
  outputs: TensorMetadataMessage[];
}

export interface ServerMetadataResponse {
  name: string;
  version: string;
  extensions: string[];
}

/** A parameter's value, whichever field of the oneof carries it. */
export function parameterValue(parameter: InferParameter): string | number | boolean | undefined {
  switch (parameter.parameter_choice) {
    case 'bool_param':
      return parameter.bool_param;
    case 'int64_param':
      return parameter.int64_param;
    case 'string_param':
      return parameter.string_param;
    case 'double_param':
      return parameter.double_param;
    case 'uint64_param':
      return parameter.uint64_param;
    default:
      return undefined;
  }
}
