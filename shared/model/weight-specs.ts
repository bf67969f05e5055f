/**
 * Sizes of TF.js weight data from its manifest entries: how many bytes the shards must hold.
 * Shared by the model store (Node) and the volunteer page's download (browser), which both
 * refuse truncated weights before handing them to tfjs.
 */
import type * as tfjs from '@tensorflow/tfjs';

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

export function weightSpecBytes(spec: tfjs.io.WeightsManifestEntry): number {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  const size = DTYPE_BYTES[dtype];
  if (size === undefined) throw new Error(`unsupported weight dtype ${dtype} for ${spec.name}`);
  return count * size;
}

/** Bytes of weight data the specs describe, all together. */
export function weightDataBytes(specs: readonly tfjs.io.WeightsManifestEntry[]): number {
  return specs.reduce((n, spec) => n + weightSpecBytes(spec), 0);
}
