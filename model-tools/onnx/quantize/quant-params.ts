/**
 * The arithmetic of linear quantization, q = clamp(round(x / scale) + zero_point), as ONNX's
 * QuantizeLinear defines it (round half to even).
 */

export type ActivationType = 'u8' | 's8';

export interface QuantParams {
  scale: number;
  zeroPoint: number;
}

export function typeBounds(type: ActivationType): [number, number] {
  return type === 'u8' ? [0, 255] : [-128, 127];
}

/** Round half to even, as QuantizeLinear (and the int32 bias, to match it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Asymmetric parameters covering [low, high] stretched to include 0, so that zero (ReLU's
 * floor, padding) is exact. A range starting at 0 gets the type's lowest code as zero point,
 * which is what lets onnxruntime drop a ReLU in front of the QuantizeLinear.
 */
export function activationParams(low: number, high: number, type: ActivationType): QuantParams {
  const [qmin, qmax] = typeBounds(type);
  const lo = Math.min(low, 0);
  let hi = Math.max(high, 0);
  if (hi - lo < 1e-8) hi = lo + 1e-8;
  const scale = Math.fround((hi - lo) / (qmax - qmin));
  const zeroPoint = Math.min(qmax, Math.max(qmin, roundHalfEven(qmin - lo / scale)));
  return { scale, zeroPoint };
}

/**
 * Symmetric per-output-channel int8 weights: channel c (the slices along `axis` of a tensor of
 * `dims`) gets scale max|w_c| / 127, codes in [−127, 127] (−128 left out, so negation is exact).
 */
export function quantizeWeightsPerChannel(values: Float32Array, dims: number[], axis: number): { codes: Int8Array; scales: Float32Array } {
  const channels = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const maxAbs = new Float64Array(channels);
  const channelOf = (i: number) => Math.floor(i / inner) % channels;
  for (let i = 0; i < values.length; i++) {
    const c = channelOf(i);
    maxAbs[c] = Math.max(maxAbs[c], Math.abs(values[i]));
  }
  const scales = new Float32Array(channels);
  for (let c = 0; c < channels; c++) scales[c] = maxAbs[c] > 0 ? maxAbs[c] / 127 : 1;
  const codes = new Int8Array(values.length);
  if (outer * channels * inner !== values.length) throw new Error(`weights of ${values.length} values do not have shape [${dims.join(', ')}]`);
  for (let i = 0; i < values.length; i++) {
    codes[i] = Math.max(-127, Math.min(127, roundHalfEven(values[i] / scales[channelOf(i)])));
  }
  return { codes, scales };
}

/** int32 bias codes with scale inputScale × weightScale[c] (zero point 0), as QLinearConv expects. */
export function quantizeBias(bias: Float32Array, inputScale: number, weightScales: Float32Array): { codes: Int32Array; scales: Float32Array } {
  const scales = new Float32Array(bias.length);
  const codes = new Int32Array(bias.length);
  for (let c = 0; c < bias.length; c++) {
    scales[c] = inputScale * weightScales[c];
    codes[c] = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, roundHalfEven(bias[c] / scales[c])));
  }
  return { codes, scales };
}
