/**
 * The one model as the Open Inference Protocol describes it, on either transport: `resnet50`,
 * whose version is the SHA-256 of the weights it serves (so a swap shows in it).
 */
import { INPUT_CHANNELS, INPUT_SIZE } from '../../../shared/caffe.ts';
import { NUM_CLASSES } from '../../../shared/labels.ts';
import type { ModelInfo } from '../../../shared/protocol/classify.ts';
import { IMAGE_INPUT, OPEN_INFERENCE_MODEL, PROBABILITIES_OUTPUT, TENSOR_INPUT } from '../../../shared/protocol/open-inference.ts';
import type { ModelMetadata } from '../../../shared/protocol/open-inference.ts';

export function modelMetadata(model: ModelInfo): ModelMetadata {
  return {
    name: OPEN_INFERENCE_MODEL,
    versions: [model.sha256],
    platform: 'onnx_onnxv1',
    // One or the other in a request: image files, or images already made into the model's input.
    inputs: [
      { name: IMAGE_INPUT, datatype: 'BYTES', shape: [-1] },
      { name: TENSOR_INPUT, datatype: 'FP32', shape: [-1, INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS] },
    ],
    outputs: [{ name: PROBABILITIES_OUTPUT, datatype: 'FP32', shape: [-1, NUM_CLASSES] }],
  };
}

/** A version names the weights served: their SHA-256, or its first 12 or more hex digits. */
export function namesVersion(version: string, sha256: string): boolean {
  return version.length >= 12 && sha256.startsWith(version.toLowerCase());
}
