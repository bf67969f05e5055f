/**
 * Image bytes -> 224x224 RGB, the way the seed (Python) did it:
 *
 *     Image.open(f).convert("RGB").resize((224, 224))      # Pillow 9.4: BICUBIC, aspect not kept
 *
 * plus EXIF orientation, which the seed ignored and we apply on purpose. The caffe
 * transform (BGR, mean subtraction) is not done here.
 *
 * How Pillow's behaviour is reproduced with sharp/libvips:
 * - `convert("RGB")` drops alpha without compositing, and keeps the colour of fully
 *   transparent pixels. libvips resizes alpha images premultiplied, so images with alpha
 *   are first decoded to raw RGB (alpha dropped) and resized in a second pass.
 * - Pillow ignores embedded ICC profiles, so we do too (`ignoreIcc`).
 * - Pillow turns CMYK into RGB with a naive formula, not with a colour profile; that is
 *   done here in JS, again followed by a second pass for the resize.
 * - Downscaling is left to libvips: its cubic kernel is Pillow's bicubic (Catmull-Rom) and
 *   agrees to ~0.2 levels on average. For large factors the two drift a little apart:
 *   libvips box-shrinks by whole factors first and JPEGs are shrunk while decoding
 *   (`fastShrinkOnLoad: false` keeps at least a 2x cubic step after that).
 * - Upscaling is not: libvips interpolates differently (off by tens of levels at edges),
 *   so any axis shorter than 224 is stretched with Pillow's exact arithmetic (pillow-resize.ts).
 * - A small plain JPEG skips libvips altogether: see IN_THREAD_MAX_PIXELS.
 *
 * Known, deliberate differences from the seed: EXIF orientation (above); 16-bit greyscale
 * is scaled to 8 bits (Pillow clips it, turning almost every such image white); in GIFs,
 * transparent pixels come out black (libvips), where Pillow shows the palette colour
 * behind them.
 *
 * Everything here is per call: no module state, no global sharp settings, so it can run
 * in any number of worker threads.
 */
import sharp from 'sharp';
import type { Metadata, Sharp, SharpOptions } from 'sharp';
import { INPUT_SIZE, INPUT_VALUES_PER_IMAGE } from '../../shared/caffe.ts';
import { ServiceError } from '../../shared/protocol/errors.ts';
import { readJpegHeader } from './jpeg-header.ts';
import { resizeLikePillow } from './pillow-resize.ts';
import type { PixelImage } from './pillow-resize.ts';
import { withDecodedJpeg } from './wasm-jpeg-decoder.ts';
import { nativeJpegDecoder } from './native-jpeg-decoder.ts';

/** Bytes of one preprocessed image: 224 * 224 * 3. */
export const OUTPUT_BYTES = INPUT_VALUES_PER_IMAGE;

export interface PreprocessLimits {
  /** Largest width * height accepted, e.g. 40_000_000. Checked from the header before decoding. */
  maxPixels: number;
}

export interface PreprocessedImage {
  /**
   * 224*224*3 bytes, HWC, RGB order, uint8, NOT yet caffe-transformed. The caller's `into`
   * when one was given; otherwise it owns its whole ArrayBuffer, so it can be transferred.
   */
  rgb: Uint8Array;
  /** Source width after EXIF orientation. */
  width: number;
  /** Source height after EXIF orientation. */
  height: number;
  /** sharp's format name: jpeg, png, webp, gif, tiff, heif. */
  format: string;
}

/** How every image is read, besides its pixel limit. */
const PIPELINE_INPUT: SharpOptions = {
  autoOrient: true,
  ignoreIcc: true,
  // 'error' rejects truncated and broken data (Pillow raises on those too) but not
  // mere libjpeg warnings such as stray bytes before a marker, which Pillow accepts.
  failOn: 'error',
};

/** Formats we decode. sharp also renders SVG (and, in other builds, PDF, JPEG 2000, ...): refused. */
const SUPPORTED_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);
const SUPPORTED_LIST = 'JPEG, PNG, WebP, GIF, TIFF or AVIF';

/**
 * Decodes and resizes one image. With `into` (OUTPUT_BYTES long), the pixels are written there
 * and `rgb` is `into`: no buffer is allocated for the result.
 */
export async function preprocessImage(bytes: Uint8Array, limits: PreprocessLimits, into?: Uint8Array): Promise<PreprocessedImage> {
  if (into && into.byteLength !== OUTPUT_BYTES) throw new RangeError(`the result needs ${OUTPUT_BYTES} bytes, got ${into.byteLength}`);
  const maxPixels = Math.floor(limits.maxPixels);
  if (!(maxPixels >= 1)) throw new RangeError(`limits.maxPixels must be a positive number, got ${limits.maxPixels}`);
  if (bytes.byteLength === 0) throw new ServiceError('unsupported_image', 'The image is empty (0 bytes).');
  const input: SharpOptions = { ...PIPELINE_INPUT, limitInputPixels: maxPixels }; // a backstop; the header checks answer first
  const plain = await decodePlainJpeg(bytes, input, maxPixels, into);
  if (plain) return plain;

  const meta = await readHeader(bytes, maxPixels);
  const format = meta.format as string;
  if (!SUPPORTED_FORMATS.has(format)) {
    throw new ServiceError('unsupported_image', `Images in ${format.toUpperCase()} format are not supported; send ${SUPPORTED_LIST}.`);
  }
  const { width, height } = meta.autoOrient;
  if (!(width > 0 && height > 0)) throw new ServiceError('corrupt_image', `The ${format.toUpperCase()} header gives no usable size (${width}x${height}).`);
  if (width * height > maxPixels) throw tooManyPixels(width, height, maxPixels);

  // sharp does the downscaled axes; an axis shorter than 224 keeps its size for now.
  const shrunk = { width: Math.min(width, INPUT_SIZE), height: Math.min(height, INPUT_SIZE) };
  const shrinks = shrunk.width < width || shrunk.height < height;
  let image: RawImage;
  try {
    if (meta.space === 'cmyk') image = await shrink(await decodeCmykAsPillow(bytes, input), shrunk, maxPixels);
    else if (meta.hasAlpha) image = await shrink(await decodeDroppingAlpha(bytes, input), shrunk, maxPixels);
    else image = await decode(sharp(bytes, input), shrinks ? shrunk : null); // the usual case: one pass
  } catch (error) {
    throw decodeError(error, meta, maxPixels);
  }
  const rgb = image.width === INPUT_SIZE && image.height === INPUT_SIZE ? image.data : resizeLikePillow(toPixels(image), INPUT_SIZE, INPUT_SIZE, into);
  if (rgb.byteLength !== OUTPUT_BYTES) {
    throw new Error(`preprocessImage produced ${rgb.byteLength} bytes, expected ${OUTPUT_BYTES}`);
  }
  return { rgb: placed(rgb, into), width, height, format };
}

/**
 * A plain sequential JPEG (grey or colour, EXIF orientation 1) of at most this many pixels
 * is decoded in this thread by libjpeg-turbo and resized by Pillow's own arithmetic:
 * bit-identical to the seed. Measured with the WebAssembly decoder, this is about where a sharp
 * pipeline becomes cheaper (CPU per image: 0.07 MP 1.8 ms against 3.1; 0.12 MP 2.3 against 2.6;
 * 0.19 MP 3.0 against 2.8; 0.31 MP 4.4 against 3.5); the native one would carry it further,
 * but the limit also bounds how long this thread is busy with one image. Larger ones go to sharp, off
 * this thread, and so do progressive ones, whose number of scans (and so decoding time) the
 * sender chooses: this thread must never be held up long.
 */
export const IN_THREAD_MAX_PIXELS = 200_000;

/**
 * libjpeg-turbo in this thread: the system's own library where it is installed, else its
 * WebAssembly build. Their pixels are identical; the native one is about 2.5× faster.
 */
async function decodeJpegHere<T>(bytes: Uint8Array, use: (image: PixelImage) => T): Promise<T | null> {
  const native = nativeJpegDecoder();
  return native ? native.decode(bytes, IN_THREAD_MAX_PIXELS, use) : withDecodedJpeg(bytes, use);
}

/**
 * The usual image, a plain colour or grey JPEG, without the metadata pass of the general path
 * (measured: 0.10–0.25 ms of CPU of ~4 ms per photo): small ones in this thread, the others in
 * the one libvips pipeline the general path would run for them. Null for anything else, and
 * for a JPEG that fails to decode, so that the general path says what is wrong with it.
 */
async function decodePlainJpeg(bytes: Uint8Array, input: SharpOptions, maxPixels: number, into: Uint8Array | undefined): Promise<PreprocessedImage | null> {
  const header = readJpegHeader(bytes);
  if (!header || (header.components !== 1 && header.components !== 3)) return null;
  const { width: storedWidth, height: storedHeight } = header;
  const pixels = storedWidth * storedHeight;
  if (pixels > maxPixels) return null;
  if (header.sequential && header.orientation === 1 && pixels <= IN_THREAD_MAX_PIXELS) {
    // What the strict decoder refuses (libjpeg warnings, damage) sharp decodes or names,
    // and the resize stays Pillow's either way.
    const resize = (image: PixelImage) => (image.width === storedWidth && image.height === storedHeight ? resizeLikePillow(image, INPUT_SIZE, INPUT_SIZE, into) : null);
    const rgb = (await decodeJpegHere(bytes, resize)) ?? (await decode(sharp(bytes, input), null).then((image) => resize(toPixels(image)), () => null));
    return rgb && { rgb, width: storedWidth, height: storedHeight, format: 'jpeg' };
  }
  if (storedWidth < INPUT_SIZE || storedHeight < INPUT_SIZE) return null;
  const target = storedWidth === INPUT_SIZE && storedHeight === INPUT_SIZE ? null : { width: INPUT_SIZE, height: INPUT_SIZE };
  try {
    const image = await decode(sharp(bytes, input), target);
    if (image.width !== INPUT_SIZE || image.height !== INPUT_SIZE) return null;
    const turned = header.orientation >= 5; // 5–8 swap the axes
    return { rgb: placed(image.data, into), width: turned ? storedHeight : storedWidth, height: turned ? storedWidth : storedHeight, format: 'jpeg' };
  } catch {
    return null;
  }
}

/** Header only: format, size, channels. No pixel data is decoded. */
async function readHeader(bytes: Uint8Array, maxPixels: number): Promise<Metadata> {
  try {
    // No pixel limit here, so that an oversized image still tells us its size.
    return await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    const message = errorMessage(error);
    const signature = sniffFormat(bytes);
    if (/unsupported image format/i.test(message) && !signature) {
      throw new ServiceError('unsupported_image', `The data is not an image in a known format; send ${SUPPORTED_LIST}.`);
    }
    // The decoders refuse some huge sizes before libvips reports them (libjpeg: a side over
    // 65500 px; libspng: rows over its byte limit), which would read as a damaged file. The
    // size is in the header: an image that declares too many pixels is told so.
    const declared = signature === 'JPEG' ? readJpegHeader(bytes) : signature === 'PNG' ? pngHeaderSize(bytes) : null;
    if (declared && declared.width > 0 && declared.height > 0) {
      if (declared.width * declared.height > maxPixels) throw tooManyPixels(declared.width, declared.height, maxPixels);
      if (/maximum supported image dimension/i.test(message)) {
        throw new ServiceError(
          'unsupported_image',
          `The ${signature} image is ${declared.width}x${declared.height}; sides over 65500 pixels cannot be decoded here.`,
        );
      }
    }
    // A known signature that libvips cannot parse (e.g. a TIFF cut before its directory).
    throw new ServiceError('corrupt_image', `The ${signature ?? 'image'} header could not be read: the file is truncated or damaged (${message}).`);
  }
}

/** Width and height from a PNG's IHDR, when they are within the format's 2^31 - 1; null otherwise. */
function pngHeaderSize(b: Uint8Array): Size | null {
  if (b.length < 24 || String.fromCharCode(...b.subarray(12, 16)) !== 'IHDR') return null;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  return width <= 0x7fff_ffff && height <= 0x7fff_ffff ? { width, height } : null;
}

const HEIF_BRANDS = new Set(['avif', 'avis', 'heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1']);

/** Names the format from its magic bytes alone, for error messages about files libvips gave up on. */
function sniffFormat(b: Uint8Array): string | null {
  const ascii = (from: number, to: number) => String.fromCharCode(...b.subarray(from, to));
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'JPEG';
  if (ascii(0, 8) === '\x89PNG\r\n\x1a\n') return 'PNG';
  if (ascii(0, 4) === 'GIF8') return 'GIF';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'WebP';
  if (['II*\0', 'MM\0*', 'II+\0', 'MM\0+'].includes(ascii(0, 4))) return 'TIFF';
  if (ascii(4, 8) === 'ftyp' && HEIF_BRANDS.has(ascii(8, 12))) return 'HEIF';
  return null;
}

/** Decoded, oriented RGB (3 channels, HWC). */
interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
}

interface Size {
  width: number;
  height: number;
}

/** Runs a pipeline to raw RGB, downscaled to `size` first if given (never upscaled). */
async function decode(pipeline: Sharp, size: Size | null): Promise<RawImage> {
  if (size) pipeline = pipeline.resize({ ...size, fit: 'fill', kernel: 'cubic', fastShrinkOnLoad: false });
  // 'srgb' output replicates greyscale to three channels, as convert("RGB") does.
  const { data, info } = await pipeline.toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`unexpected ${info.channels} channels in decoded RGB`);
  return { data, width: info.width, height: info.height };
}

const toPixels = (image: RawImage): PixelImage => ({ ...image, channels: 3 });

/** Second pass for images that needed a first one: downscale raw RGB, which has no alpha left. */
async function shrink(image: RawImage, size: Size, maxPixels: number): Promise<RawImage> {
  if (image.width === size.width && image.height === size.height) return image;
  const { data, width, height } = image;
  return decode(sharp(data, { raw: { width, height, channels: 3 }, limitInputPixels: maxPixels }), size);
}

/** First pass for images with alpha: oriented, alpha dropped (not composited), full size. */
async function decodeDroppingAlpha(bytes: Uint8Array, input: SharpOptions): Promise<RawImage> {
  return decode(sharp(bytes, input).removeAlpha(), null);
}

/**
 * First pass for CMYK: read the CMYK values as stored and convert them with Pillow's
 * formula, R = (255 - C) * (255 - K) / 255 etc., instead of libvips' ICC conversion.
 * (Both decoders read CMYK JPEGs as Adobe-inverted, with or without the Adobe marker.)
 */
async function decodeCmykAsPillow(bytes: Uint8Array, input: SharpOptions): Promise<RawImage> {
  const { data: cmyk, info } = await sharp(bytes, input)
    .pipelineColourspace('cmyk') // keeps libvips from converting with a CMYK profile
    .removeAlpha()
    .toColourspace('cmyk')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 4) throw new Error(`unexpected ${info.channels} channels for CMYK`);
  const pixels = info.width * info.height;
  const rgb = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    const i = p * 4;
    const o = p * 3;
    const nk = 255 - cmyk[i + 3];
    for (let c = 0; c < 3; c++) rgb[o + c] = nk - muldiv255(cmyk[i + c], nk); // never below 0
  }
  return { data: rgb, width: info.width, height: info.height };
}

/** Pillow's MULDIV255: a * b / 255, rounded, in integers. */
function muldiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

function decodeError(error: unknown, meta: Metadata, maxPixels: number): Error {
  const message = errorMessage(error);
  if (/exceeds pixel limit/i.test(message)) return tooManyPixels(meta.width, meta.height, maxPixels);
  // Prebuilt sharp has no HEVC decoder: HEIC photos are read as far as the header only.
  if (meta.format === 'heif' && meta.compression !== 'av1') {
    return new ServiceError('unsupported_image', `HEIC (${meta.compression ?? 'unknown'}) images cannot be decoded here; send ${SUPPORTED_LIST}.`);
  }
  return new ServiceError('corrupt_image', `The ${meta.format.toUpperCase()} image is truncated or damaged (${message}).`);
}

function tooManyPixels(width: number, height: number, maxPixels: number): ServiceError {
  const megapixels = (n: number) => `${(n / 1e6).toFixed(1)} MP`;
  return new ServiceError(
    'too_many_pixels',
    `The image is ${width}x${height} (${megapixels(width * height)}), more than the limit of ${maxPixels} pixels (${megapixels(maxPixels)}).`,
  );
}

function errorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0].trim(); // libvips appends its whole warning log on later lines
}

/**
 * A plain Uint8Array (not a Buffer, whose slice() does not copy) that owns its whole
 * ArrayBuffer, so the caller can transfer it. sharp's output already owns its memory.
 */
/** The result in `into` when there is one, else in a buffer of its own (so it can be transferred). */
function placed(data: Uint8Array, into: Uint8Array | undefined): Uint8Array {
  if (data === into) return into;
  if (into) {
    into.set(data);
    return into;
  }
  if (data.byteOffset === 0 && data.buffer.byteLength === data.byteLength) return new Uint8Array(data.buffer);
  return new Uint8Array(data);
}
