/**
 * Pillow 9.4's `resize((width, height))` with BICUBIC for 8-bit RGB, bit for bit: the C in
 * pillow-resize/resize.c, compiled to WebAssembly with SIMD (the .wasm is committed; build.sh
 * remakes it). Synchronous and in this thread: a 384×256 photo to 224×224 takes about 0.45 ms,
 * where a sharp pipeline spends more than that handing the image between threads.
 *
 * One instance per thread (module state), so it can run in any number of worker threads.
 */
import { readFileSync } from 'node:fs';

/** Interleaved 8-bit pixels, one (grey) or three (RGB) channels, rows top to bottom. */
export interface PixelImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

interface ResizeExports {
  resize(src: number, w: number, h: number, dst: number, outW: number, outH: number, tmp: number, ints: number, pre: number): void;
  __heap_base: WebAssembly.Global;
}

const WASM_PAGE = 65_536;
// The module asks for 2 pages (its stack and data); 16 also fit the usual photo without growing.
const memory = new WebAssembly.Memory({ initial: 16 });
const wasm = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(new URL('./pillow-resize/resize.wasm', import.meta.url))), {
  env: { memory },
});
const exports = wasm.exports as unknown as ResizeExports;
const heapBase = Number(exports.__heap_base.value);

/** Pillow's window for one axis, rounded up: ceil(support * scale) * 2 + 1 taps per output pixel. */
function tapsPerPixel(inSize: number, outSize: number): number {
  return Math.ceil(2 * Math.max(inSize / outSize, 1)) * 2 + 1;
}

const align = (at: number, to: number) => Math.ceil(at / to) * to;

/**
 * Resizes to width × height RGB, as Pillow would after `convert("RGB")`. Grey is replicated
 * first. Written into `into` when given (width * height * 3 bytes), else into a new buffer.
 */
export function resizeLikePillow(image: PixelImage, width: number, height: number, into?: Uint8Array): Uint8Array {
  const { data, width: w, height: h, channels } = image;
  if (!(w >= 1 && h >= 1 && width >= 1 && height >= 1)) throw new RangeError(`cannot resize ${w}x${h} to ${width}x${height}`);
  if (data.byteLength !== w * h * channels) throw new RangeError(`${data.byteLength} bytes for ${w}x${h}x${channels}`);
  const tapsX = tapsPerPixel(w, width);
  const tapsY = tapsPerPixel(h, height);
  const src = align(heapBase, 16);
  const dst = align(src + w * h * 3 + 16, 16); // the horizontal pass reads one byte past the last pixel
  const tmp = align(dst + width * height * 3, 16);
  const ints = align(tmp + width * h * 3, 16);
  const pre = align(ints + 4 * (2 * width + 2 * height + width * tapsX + height * tapsY), 16);
  const end = pre + 8 * Math.max(width * tapsX, height * tapsY);
  if (end > memory.buffer.byteLength) memory.grow(Math.ceil((end - memory.buffer.byteLength) / WASM_PAGE));

  const heap = new Uint8Array(memory.buffer);
  if (channels === 3) heap.set(data, src);
  else for (let i = 0, o = src; i < data.length; i++, o += 3) heap[o] = heap[o + 1] = heap[o + 2] = data[i];
  exports.resize(src, w, h, dst, width, height, tmp, ints, pre);
  const result = heap.subarray(dst, dst + width * height * 3);
  if (!into) return result.slice();
  if (into.byteLength !== result.byteLength) throw new RangeError(`${into.byteLength} bytes for a ${width}x${height} RGB result`);
  into.set(result);
  return into;
}
