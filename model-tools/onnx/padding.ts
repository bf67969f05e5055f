/**
 * Padding arithmetic: TF's 'same' padding spelled out as explicit pads, and the exact
 * correction for zero padding in front of a max-pool.
 */
import { OnnxExportError, type Layer } from './keras-graph.ts';

/**
 * TF 'same' padding for one spatial axis: output ceil(in/stride), the total padding split with
 * the odd pixel at the end (bottom/right), unlike some other frameworks.
 */
export function samePadding(size: number, kernel: number, stride: number, dilation: number): [number, number] {
  const effective = (kernel - 1) * dilation + 1;
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + effective - size, 0);
  const begin = Math.floor(total / 2);
  return [begin, total - begin];
}

/**
 * A ZeroPadding2D in front of a max-pool. ONNX MaxPool pads act as -inf; zeros differ only in a
 * window that covers some zero-padded cell, where the result must be max(window, 0). So the pool
 * runs with the zero padding as ordinary pads, and its output goes through Max with a constant
 * mask: 0 where the window covers a zero-padded cell, -inf elsewhere. Exact for any input.
 *
 * (A Pad node followed by MaxPool is NOT safe: onnxruntime's PadFusion, at every optimisation
 * level from 'basic' up, moves a zero Pad into the MaxPool's pads and so changes the result for
 * negative windows — measured with onnxruntime-node 1.30.)
 *
 * Returns undefined when the mask cannot change anything, which is the ResNet50 case (pool1_pad
 * on a ReLU output): if the input is ≥ 0 and every window that covers a zero-padded cell also
 * covers a real one, that window's max is already ≥ 0, so max(window, 0) = max(window) and the
 * zeros behave exactly like -inf padding.
 *
 * @param shape Keras input shape after the zero padding
 * @param zero [top, left, bottom, right] zero padding, innermost; @param same 'same' padding (-inf), outside it
 */
export function zeroPaddingMask(
  layer: Layer,
  shape: Array<number | null>,
  outShape: Array<number | null>,
  zero: number[],
  same: number[],
  kernel: [number, number],
  strides: [number, number],
  nonNegative: boolean,
): Float32Array | undefined {
  const [, h, w] = shape;
  const [, oh, ow] = outShape;
  if (h === null || w === null || oh === null || ow === null) {
    throw new OnnxExportError(layer.name, 'zero padding before a max-pool needs known spatial dimensions');
  }
  /** For each output index along one axis: does its window cover a zero cell / a real cell? */
  const axis = (size: number, out: number, k: number, s: number, zBegin: number, zEnd: number, sBegin: number) => {
    const real = size - zBegin - zEnd;
    // Padded coordinates: [sBegin 'same' cells][zBegin zeros][real][zEnd zeros][then 'same' cells].
    const zeroLo = sBegin;
    const realLo = sBegin + zBegin;
    const realHi = realLo + real; // exclusive
    const zeroHi = realHi + zEnd; // exclusive
    const coversZero: boolean[] = [];
    const coversReal: boolean[] = [];
    for (let i = 0; i < out; i++) {
      const lo = i * s;
      const hi = lo + k; // exclusive
      const overlaps = (a: number, b: number) => lo < b && a < hi;
      coversReal.push(overlaps(realLo, realHi));
      coversZero.push(overlaps(zeroLo, realLo) || overlaps(realHi, zeroHi));
    }
    return { coversZero, coversReal, coversNonSame: coversZero.map((z, i) => z || coversReal[i]) };
  };
  const rows = axis(h, oh, kernel[0], strides[0], zero[0], zero[2], same[0]);
  const cols = axis(w, ow, kernel[1], strides[1], zero[1], zero[3], same[1]);
  const mask = new Float32Array(oh * ow).fill(-Infinity);
  let needed = false;
  for (let i = 0; i < oh; i++) {
    for (let j = 0; j < ow; j++) {
      // A zero cell is one inside both the rows and columns not padded by 'same', and in the
      // zero-padded band of either.
      const zeroCell = rows.coversNonSame[i] && cols.coversNonSame[j] && (rows.coversZero[i] || cols.coversZero[j]);
      if (!zeroCell) continue;
      mask[i * ow + j] = 0;
      if (!(nonNegative && rows.coversReal[i] && cols.coversReal[j])) needed = true;
    }
  }
  return needed ? mask : undefined;
}

