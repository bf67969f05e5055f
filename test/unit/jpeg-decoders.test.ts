/**
 * The two in-thread JPEG decoders: the system's libturbojpeg (through koffi) and libjpeg-turbo's
 * WebAssembly build. preprocessImage uses the first where it is installed, so these check the
 * second directly, and that the two give the same pixels. Both refuse damaged files (sharp
 * then names what is wrong) and keep working after them.
 *
 * Run: node --import tsx --test test/unit/jpeg-decoders.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { nativeJpegDecoder } from '../../server/preprocess/native-jpeg-decoder.ts';
import { withDecodedJpeg } from '../../server/preprocess/wasm-jpeg-decoder.ts';
import { readJpegHeader } from '../../server/preprocess/jpeg-header.ts';
import { resizeLikePillow } from '../../server/preprocess/pillow-resize.ts';
import type { PixelImage } from '../../server/preprocess/pillow-resize.ts';
import { INPUT_SIZE } from '../../shared/caffe.ts';

const DIRS = [new URL('../fixtures/preprocess/', import.meta.url), new URL('../fixtures/photos/', import.meta.url)];
const ANY_SIZE = 40_000_000;
const native = nativeJpegDecoder();
const NATIVE_MISSING = native ? false : 'libturbojpeg.so.0 is not installed (Debian: apt install libturbojpeg0)';

const copy = (image: PixelImage) => ({ ...image, data: Uint8Array.from(image.data) });
const toModelInput = (image: PixelImage) => resizeLikePillow(image, INPUT_SIZE, INPUT_SIZE);

/** Every fixture JPEG the in-thread path takes: grey or colour, sequential. */
function plainJpegs(): Array<{ name: string; bytes: Buffer }> {
  return DIRS.flatMap((dir) =>
    readdirSync(dir)
      .filter((name) => name.endsWith('.jpg'))
      .map((name) => ({ name, bytes: readFileSync(new URL(name, dir)) }))
      .filter(({ bytes }) => {
        const header = readJpegHeader(bytes);
        return header !== null && header.sequential && (header.components === 1 || header.components === 3);
      }),
  );
}

/** A JPEG cut short, and one with its scan data garbled (the header stays readable). */
function damaged(jpeg: Buffer): Buffer[] {
  const garbled = Buffer.from(jpeg);
  for (let i = 700; i < garbled.length - 2; i += 997) garbled[i] ^= 0x5a;
  return [jpeg.subarray(0, jpeg.length >> 1), garbled];
}

const photo = readFileSync(new URL('photo.jpg', DIRS[0]));
const photoAsPillow = gunzipSync(readFileSync(new URL('photo.jpg.rgb.gz', DIRS[0])));
const withWarning = Buffer.concat([photo.subarray(0, -2), Buffer.from([0, 0, 0]), photo.subarray(-2)]);

test('the WebAssembly decoder is bit-identical to Pillow, and recovers from damaged files', async () => {
  assert.deepEqual(Buffer.from((await withDecodedJpeg(photo, toModelInput))!), photoAsPillow);
  assert.equal(await withDecodedJpeg(withWarning, toModelInput), null, 'a libjpeg warning is refused (sharp takes the file)');
  for (const bad of damaged(photo)) {
    assert.equal(await withDecodedJpeg(bad, toModelInput), null);
    assert.deepEqual(Buffer.from((await withDecodedJpeg(photo, toModelInput))!), photoAsPillow);
  }
});

test('libturbojpeg decodes every fixture JPEG exactly as the WebAssembly build does', { skip: NATIVE_MISSING }, async () => {
  const files = plainJpegs();
  assert.ok(files.length >= 8, `${files.length} fixture JPEGs`);
  for (const { name, bytes } of files) {
    const fromWasm = await withDecodedJpeg(bytes, copy);
    const fromNative = native!.decode(bytes, ANY_SIZE, copy);
    assert.ok(fromWasm && fromNative, `${name}: both decode it`);
    assert.deepEqual([fromNative.width, fromNative.height, fromNative.channels], [fromWasm.width, fromWasm.height, fromWasm.channels], name);
    assert.ok(Buffer.from(fromNative.data).equals(Buffer.from(fromWasm.data)), `${name}: same pixels`);
  }
});

test('libturbojpeg refuses damaged files, keeps to its pixel limit, and recovers', { skip: NATIVE_MISSING }, () => {
  const decoder = native!;
  assert.deepEqual(Buffer.from(decoder.decode(photo, ANY_SIZE, toModelInput)!), photoAsPillow);
  // TurboJPEG stops at the last scanline, before the stray bytes: the clean file's pixels, as Pillow gives.
  assert.deepEqual(Buffer.from(decoder.decode(withWarning, ANY_SIZE, toModelInput)!), photoAsPillow);
  const { width, height } = readJpegHeader(photo)!;
  assert.equal(decoder.decode(photo, width * height - 1, toModelInput), null, 'one pixel over the limit');
  assert.equal(decoder.decode(Buffer.from('not a jpeg at all'), ANY_SIZE, toModelInput), null);
  for (const bad of damaged(photo)) {
    assert.equal(decoder.decode(bad, ANY_SIZE, toModelInput), null);
    assert.deepEqual(Buffer.from(decoder.decode(photo, ANY_SIZE, toModelInput)!), photoAsPillow);
  }
});
