/**
 * libjpeg-turbo compiled to WebAssembly (@cornerstonejs/codec-libjpeg-turbo-8bit), run
 * synchronously in this thread. For the usual small photo it is cheaper than sharp, whose
 * pipeline hands each image between libuv's and libvips' threads (see "Decoding" in the
 * README). Its pixels are the same as sharp's (both are libjpeg with the default integer IDCT
 * and fancy upsampling).
 *
 * It is strict: what libjpeg only warns about (stray bytes, a truncated scan) fails here, and
 * the caller leaves such files to sharp, which decides the way Pillow would. A failure also
 * leaves the instance unusable (its C++ exception is never caught inside the module), so
 * every failure is followed by a fresh instance.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { PixelImage } from './pillow-resize.ts';

interface JpegDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number };
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}

interface CodecModule {
  JPEGDecoder: new () => JpegDecoder;
}

type InstantiateWasm = (imports: WebAssembly.Imports, done: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void) => WebAssembly.Exports;

type CodecFactory = (options: { instantiateWasm: InstantiateWasm; print: (text: string) => void; printErr: (text: string) => void }) => Promise<CodecModule>;

const require = createRequire(import.meta.url);
const createCodec = require('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs') as CodecFactory;
const compiled = new WebAssembly.Module(readFileSync(require.resolve('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasm')));

const quiet = () => {};

function instantiate(): Promise<CodecModule> {
  return createCodec({
    // Synchronous, from the module compiled once per thread: a fresh instance costs ~3.5 ms, not a compile.
    instantiateWasm: (imports, done) => {
      const instance = new WebAssembly.Instance(compiled, imports);
      done(instance, compiled);
      return instance.exports;
    },
    print: quiet,
    printErr: quiet,
  });
}

let codec: Promise<CodecModule> = instantiate();

/** The newest instance: one awaited before a failure replaced it must not be used. */
async function currentCodec(): Promise<CodecModule> {
  for (;;) {
    const awaited = codec;
    const module = await awaited;
    if (awaited === codec) return module;
  }
}

/**
 * Decodes (grey or RGB, as stored: no EXIF orientation) and hands the pixels to `use`. They are
 * a fresh copy the module makes of each image (getDecodedBuffer), 300 KB for a 384×256 photo:
 * the native decoder (native-jpeg-decoder.ts) avoids that copy where it is installed.
 * Null when libjpeg found anything wrong, or when no instance could be made.
 */
export async function withDecodedJpeg<T>(bytes: Uint8Array, use: (image: PixelImage) => T): Promise<T | null> {
  const module = await currentCodec().catch(() => null);
  if (!module) {
    codec = instantiate(); // sharp decodes this one; the next may find a working instance
    return null;
  }
  const { JPEGDecoder } = module;
  let decoder: JpegDecoder | undefined;
  try {
    decoder = new JPEGDecoder();
    decoder.getEncodedBuffer(bytes.byteLength).set(bytes);
    decoder.decode();
    const { width, height, bitsPerSample, componentCount } = decoder.getFrameInfo();
    const data = decoder.getDecodedBuffer();
    if (bitsPerSample !== 8 || (componentCount !== 1 && componentCount !== 3) || data.byteLength !== width * height * componentCount) return null;
    return use({ data, width, height, channels: componentCount });
  } catch {
    decoder = undefined; // its memory went with the instance
    codec = instantiate();
    return null;
  } finally {
    decoder?.delete();
  }
}
