/**
 * Keras 'caffe' preprocessing (what keras.applications.resnet50.preprocess_input does):
 * RGB → BGR, subtract the ImageNet channel means, no scaling. Plain loops, no tfjs, so the
 * server, the workers and the browser share one exact definition.
 */

export const INPUT_SIZE = 224;
export const INPUT_CHANNELS = 3;
/** Bytes (= floats) per image: 224 × 224 × 3. */
export const INPUT_VALUES_PER_IMAGE = INPUT_SIZE * INPUT_SIZE * INPUT_CHANNELS;
/** ImageNet means in BGR order, as Keras subtracts them. */
export const CAFFE_MEAN_BGR = [103.939, 116.779, 123.68] as const;

/**
 * @param rgb `batch` uint8 HWC RGB images of 224×224, concatenated.
 * @param out optional destination (length ≥ batch × 150528), e.g. a pooled buffer.
 * @returns float32 NHWC in BGR channel order, means subtracted.
 */
export function toCaffeInput(rgb: Uint8Array, batch: number, out?: Float32Array): Float32Array {
  const n = batch * INPUT_VALUES_PER_IMAGE;
  if (!Number.isInteger(batch) || batch < 0) throw new RangeError(`batch must be a non-negative integer, got ${batch}`);
  if (rgb.length !== n) {
    throw new RangeError(`expected ${n} bytes for ${batch} image(s) of ${INPUT_SIZE}x${INPUT_SIZE}x3, got ${rgb.length}`);
  }
  const dst = out ?? new Float32Array(n);
  if (dst.length < n) throw new RangeError(`output buffer too small: ${dst.length} < ${n}`);
  const [mb, mg, mr] = CAFFE_MEAN_BGR;
  for (let i = 0; i < n; i += 3) {
    dst[i] = rgb[i + 2] - mb;
    dst[i + 1] = rgb[i + 1] - mg;
    dst[i + 2] = rgb[i] - mr;
  }
  return dst;
}
