/**
 * libjpeg-turbo itself, the system's `libturbojpeg.so.0` with its SIMD code, called through
 * koffi's FFI, synchronously in the calling thread. For a 384×256 photo it decodes in 0.34 ms
 * where the WebAssembly build (wasm-jpeg-decoder.ts) takes 0.9 ms and then copies the pixels
 * out; here they land in a buffer the thread keeps. Optional: where the library is not
 * installed (Debian: `apt install libturbojpeg0`), the WebAssembly decoder does the same work.
 * Their pixels are identical (both are libjpeg-turbo with the default integer IDCT and fancy
 * upsampling; test/integration/preprocess.test.ts compares them), so which one ran never shows in an answer.
 *
 * Strict like the WebAssembly decoder: with TJFLAG_STOPONWARNING, what libjpeg warns about
 * while decoding fails, and the caller leaves such a file to sharp. (Bytes after the last scan
 * are never read, so they change nothing, as in Pillow.) A failure leaves the handle usable.
 */
import koffi from 'koffi';
import type { LibraryHandle } from 'koffi';
import type { PixelImage } from './pillow-resize.ts';

/** turbojpeg.h (libjpeg-turbo 2.1): pixel formats, colour spaces and flags used here. */
const TJPF_RGB = 0;
const TJPF_GRAY = 6;
const TJCS_RGB = 0;
const TJCS_YCbCr = 1;
const TJCS_GRAY = 2;
const TJFLAG_STOPONWARNING = 8192;
const TJFLAG_LIMITSCANS = 32768;
const LIBRARY = 'libturbojpeg.so.0';

export interface NativeJpegDecoder {
  /**
   * Decodes a grey or colour JPEG (as stored: no EXIF orientation) of at most `maxPixels` and
   * hands the pixels to `use`. They are in a buffer the next image reuses: `use` must copy what
   * it keeps. Null when libjpeg found anything wrong, or when the image is larger or of another kind.
   */
  decode<T>(bytes: Uint8Array, maxPixels: number, use: (image: PixelImage) => T): T | null;
}

interface Header {
  width: number;
  height: number;
  colorspace: number;
}

function bind(): NativeJpegDecoder | null {
  let lib: LibraryHandle;
  try {
    lib = koffi.load(LIBRARY);
  } catch {
    return null; // not installed: the WebAssembly decoder is used
  }
  const init = lib.func('void *tjInitDecompress()');
  const readHeader = lib.func(
    'int tjDecompressHeader3(void *handle, const uint8_t *jpeg, unsigned long size, _Out_ int *width, _Out_ int *height, _Out_ int *subsampling, _Out_ int *colorspace)',
  );
  const decompress = lib.func(
    'int tjDecompress2(void *handle, const uint8_t *jpeg, unsigned long size, _Inout_ uint8_t *out, int width, int pitch, int height, int format, int flags)',
  );
  // koffi returns an opaque pointer object; null when libjpeg-turbo could not allocate a handle.
  const handle: unknown = init();
  if (!handle) return null;
  let output = new Uint8Array(0);

  const header = (bytes: Uint8Array): Header | null => {
    const width = [0];
    const height = [0];
    const subsampling = [0];
    const colorspace = [0];
    if (readHeader(handle, bytes, bytes.byteLength, width, height, subsampling, colorspace) !== 0) return null;
    return { width: width[0], height: height[0], colorspace: colorspace[0] };
  };

  return {
    decode(bytes, maxPixels, use) {
      const found = header(bytes);
      if (!found || !(found.width > 0 && found.height > 0) || found.width * found.height > maxPixels) return null;
      const { width, height, colorspace } = found;
      const channels = colorspace === TJCS_GRAY ? 1 : colorspace === TJCS_YCbCr || colorspace === TJCS_RGB ? 3 : 0;
      if (channels === 0) return null; // CMYK and YCCK: sharp converts them as Pillow does
      const size = width * height * channels;
      if (output.byteLength < size) output = new Uint8Array(size);
      const pixels = output.subarray(0, size);
      const flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
      if (decompress(handle, bytes, bytes.byteLength, pixels, width, 0, height, channels === 1 ? TJPF_GRAY : TJPF_RGB, flags) !== 0) return null;
      return use({ data: pixels, width, height, channels });
    },
  };
}

let decoder: NativeJpegDecoder | null | undefined;

/** This thread's decoder; null where libturbojpeg cannot be loaded. */
export function nativeJpegDecoder(): NativeJpegDecoder | null {
  if (decoder === undefined) decoder = bind();
  return decoder;
}
