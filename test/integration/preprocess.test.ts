/**
 * preprocessImage against the seed's Pillow output (fixtures made by
 * scripts/make-preprocess-fixtures.py; see test/fixtures/preprocess/README.md), plus its
 * errors and output invariants. Run: node --import tsx --test test/integration/preprocess.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { IN_THREAD_MAX_PIXELS, OUTPUT_BYTES, preprocessImage } from '../../server/preprocess/preprocess-image.ts';
import { INPUT_SIZE } from '../../shared/caffe.ts';
import { resizeLikePillow } from '../../server/preprocess/pillow-resize.ts';
import type { PreprocessedImage } from '../../server/preprocess/preprocess-image.ts';
import { ServiceError } from '../../shared/protocol/errors.ts';
import type { ErrorCode } from '../../shared/protocol/errors.ts';

const FIXTURES = new URL('../fixtures/preprocess/', import.meta.url);
const LIMITS = { maxPixels: 40_000_000 };
const MAX_MEAN_DIFF = 0.5;
const MAX_DIFF = 8;

interface Fixture {
  file: string;
  width: number;
  height: number;
  format: string;
}

const fixture = (name: string): Buffer => readFileSync(new URL(name, FIXTURES));
const manifest = JSON.parse(fixture('manifest.json').toString('utf8')) as Fixture[];

function difference(a: Uint8Array, b: Uint8Array): { mean: number; max: number } {
  assert.equal(a.length, b.length);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    sum += d;
    if (d > max) max = d;
  }
  return { mean: sum / a.length, max };
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<ServiceError> {
  const error = await promise.then(
    () => assert.fail(`expected a ServiceError '${code}', got a result`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ServiceError, `expected a ServiceError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  return error;
}

test('the fixture set covers every case the parity tests are meant to', () => {
  const files = manifest.map((f) => f.file);
  for (const name of ['photo.jpg', 'flat.png', 'rgba.png', 'grey.jpg', 'exif-6.jpg', 'exif-8.jpg', 'cmyk.jpg', 'palette.png', 'small.png', 'photo.webp', 'anim.gif', 'two-pages.tiff']) {
    assert.ok(files.includes(name), `${name} missing from manifest.json`);
  }
});

for (const { file, width, height, format } of manifest) {
  test(`matches Pillow: ${file}`, async (t) => {
    const reference = gunzipSync(fixture(`${file}.rgb.gz`));
    assert.equal(reference.length, OUTPUT_BYTES);
    const out = await preprocessImage(fixture(file), LIMITS);
    assert.deepEqual({ width: out.width, height: out.height, format: out.format }, { width, height, format });
    const { mean, max } = difference(out.rgb, reference);
    t.diagnostic(`${file}: mean ${mean.toFixed(3)} max ${max}`);
    assert.ok(mean <= MAX_MEAN_DIFF, `${file}: mean difference ${mean.toFixed(3)} > ${MAX_MEAN_DIFF}`);
    assert.ok(max <= MAX_DIFF, `${file}: max difference ${max} > ${MAX_DIFF}`);
  });
}

test('output shape: 224*224*3 bytes in a Uint8Array that owns its buffer', async () => {
  for (const file of ['photo.jpg', 'rgba.png', 'small.png', 'cmyk.jpg']) {
    const { rgb } = await preprocessImage(fixture(file), LIMITS);
    assert.equal(Object.getPrototypeOf(rgb), Uint8Array.prototype); // a plain Uint8Array, not a Buffer
    assert.equal(rgb.length, 150528);
    assert.equal(rgb.length, INPUT_SIZE * INPUT_SIZE * 3);
    // Exactly its own ArrayBuffer, so the caller can transfer it to another thread.
    assert.equal(rgb.byteOffset, 0);
    assert.equal(rgb.buffer.byteLength, 150528);
  }
});

test('a flat colour stays exactly that colour in every pixel (RGB order, HWC)', async () => {
  const { rgb } = await preprocessImage(fixture('flat.png'), LIMITS);
  for (let i = 0; i < rgb.length; i += 3) {
    if (rgb[i] !== 23 || rgb[i + 1] !== 140 || rgb[i + 2] !== 201) {
      assert.fail(`pixel ${i / 3} is ${rgb.subarray(i, i + 3).join(',')}, expected 23,140,201`);
    }
  }
});

test('EXIF orientation is applied: reported size is upright, pixels match the upright reference', async () => {
  const stored = await sharp(fixture('exif-6.jpg')).metadata();
  assert.deepEqual([stored.width, stored.height, stored.orientation], [160, 240, 6]);
  const out = await preprocessImage(fixture('exif-6.jpg'), LIMITS);
  assert.deepEqual([out.width, out.height], [240, 160]);
  // Orientations 6 and 8 store the same picture rotated opposite ways.
  const other = await preprocessImage(fixture('exif-8.jpg'), LIMITS);
  assert.ok(difference(out.rgb, other.rgb).mean < 0.5);
});

test('the same bytes give the same output, and the input is not modified', async () => {
  const bytes = fixture('rgba.png');
  const copy = Buffer.from(bytes);
  const a = await preprocessImage(bytes, LIMITS);
  const b = await preprocessImage(bytes, LIMITS);
  assert.deepEqual(a.rgb, b.rgb);
  assert.deepEqual(bytes, copy);
});

test('a JPEG with a libjpeg warning (stray bytes before EOI) is accepted, as Pillow accepts it', async () => {
  const jpeg = fixture('photo.jpg');
  const warned = Buffer.concat([jpeg.subarray(0, -2), Buffer.from([0, 0, 0]), jpeg.subarray(-2)]);
  assert.deepEqual((await preprocessImage(warned, LIMITS)).rgb, (await preprocessImage(jpeg, LIMITS)).rgb);
});

test('accepts a plain Uint8Array view at an offset', async () => {
  const jpeg = fixture('photo.jpg');
  const backing = new Uint8Array(jpeg.length + 100);
  backing.set(jpeg, 37);
  const view = backing.subarray(37, 37 + jpeg.length);
  const a = await preprocessImage(view, LIMITS);
  const b = await preprocessImage(jpeg, LIMITS);
  assert.deepEqual(a.rgb, b.rgb);
});

test('AVIF decodes (format heif) and matches its source closely', async (t) => {
  if (!sharp.format.heif.input.buffer) return t.skip('this sharp build cannot read HEIF/AVIF');
  const source = fixture('photo.jpg');
  const avif = await sharp(source).avif({ quality: 90 }).toBuffer();
  const out = await preprocessImage(avif, LIMITS);
  assert.deepEqual([out.format, out.width, out.height], ['heif', 384, 256]);
  const { mean } = difference(out.rgb, (await preprocessImage(source, LIMITS)).rgb);
  t.diagnostic(`AVIF vs its JPEG source: mean ${mean.toFixed(3)}`);
  assert.ok(mean < 3, `AVIF differs from its source by ${mean.toFixed(3)} on average`);
});

test('Pillow-exact bicubic upscaling of a step edge', () => {
  // Pillow 9.4: Image.frombytes("L", (10, 1), bytes([0]*5 + [200]*5)).resize((30, 1), BICUBIC)
  const pillow = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 59, 141, 200, 215, 207, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200];
  const row = new Uint8Array(30).map((_, i) => (i < 15 ? 0 : 200)); // 10 RGB pixels, 5 black, 5 grey
  const out = resizeLikePillow({ data: row, width: 10, height: 1, channels: 3 }, 30, 1);
  assert.deepEqual([...out].filter((_, i) => i % 3 === 0), pillow);
});

test('runs inside a worker thread and gives the same bytes', async () => {
  const bytes = fixture('rgba.png');
  const moduleUrl = new URL('../../server/preprocess/preprocess-image.ts', import.meta.url).href;
  // Workers do not inherit `--import tsx` (Node 20), so the worker registers tsx itself.
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     import(workerData.tsxApi)
       .then((tsx) => { tsx.register(); return import(workerData.moduleUrl); })
       .then((m) => m.preprocessImage(workerData.bytes, { maxPixels: 40000000 }))
       .then((out) => parentPort.postMessage(out, [out.rgb.buffer]), (e) => parentPort.postMessage({ error: String(e) }));`,
    { eval: true, workerData: { tsxApi, moduleUrl, bytes } },
  );
  try {
    const result = await new Promise<PreprocessedImage & { error?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    assert.equal(result.error, undefined);
    assert.deepEqual(Buffer.from(result.rgb), Buffer.from((await preprocessImage(bytes, LIMITS)).rgb));
  } finally {
    await worker.terminate();
  }
});

// --- errors -------------------------------------------------------------------------------

test('an empty buffer is unsupported_image', async () => {
  await rejectsWith(preprocessImage(new Uint8Array(0), LIMITS), 'unsupported_image');
});

test('random bytes are unsupported_image', async () => {
  let seed = 12345; // fixed, so the bytes never happen to start with an image signature
  const random = new Uint8Array(4096).map(() => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
  await rejectsWith(preprocessImage(random, LIMITS), 'unsupported_image');
  await rejectsWith(preprocessImage(new TextEncoder().encode('<html>not an image</html>'), LIMITS), 'unsupported_image');
});

test('an SVG is unsupported_image, although sharp could render it', async () => {
  const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
  const error = await rejectsWith(preprocessImage(svg, LIMITS), 'unsupported_image');
  assert.match(error.message, /SVG/);
});

test('a JPEG cut in half is corrupt_image', async () => {
  const jpeg = fixture('photo.jpg');
  const error = await rejectsWith(preprocessImage(jpeg.subarray(0, jpeg.length >> 1), LIMITS), 'corrupt_image');
  assert.match(error.message, /JPEG image is truncated or damaged/);
});

test('other truncated images are corrupt_image too', async () => {
  // Cut to a quarter: a GIF cut after its first frame is still fine for Pillow and for us.
  for (const file of ['rgba.png', 'palette.png', 'two-pages.tiff', 'anim.gif', 'photo.webp', 'cmyk.jpg']) {
    const bytes = fixture(file);
    const error = await rejectsWith(preprocessImage(bytes.subarray(0, bytes.length >> 2), LIMITS), 'corrupt_image');
    assert.match(error.message, /truncated or damaged/, file);
  }
});

/** A PNG whose IHDR claims width x height; the (valid) chunks carry no real image data. */
function pngHeader(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter method quirks, not interlaced
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])), // empty zlib stream
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

test('a header claiming 50000x50000 is too_many_pixels, answered from the header alone', async (t) => {
  const png = pngHeader(50_000, 50_000);
  assert.equal((await sharp(png, { limitInputPixels: false }).metadata()).width, 50_000); // the header is valid
  await preprocessImage(fixture('flat.png'), LIMITS); // warm up sharp
  const started = performance.now();
  const error = await rejectsWith(preprocessImage(png, LIMITS), 'too_many_pixels');
  const elapsed = performance.now() - started;
  t.diagnostic(`rejected in ${elapsed.toFixed(2)} ms: ${error.message}`);
  assert.ok(elapsed < 100, `took ${elapsed.toFixed(1)} ms`);
  assert.match(error.message, /50000x50000/);
  assert.match(error.message, /40000000/);
  await rejectsWith(preprocessImage(pngHeader(100_000, 100_000), LIMITS), 'too_many_pixels');
});

test('maxPixels is inclusive: exactly width*height passes, one less fails', async () => {
  const jpeg = fixture('photo.jpg'); // 384x256
  await preprocessImage(jpeg, { maxPixels: 384 * 256 });
  const error = await rejectsWith(preprocessImage(jpeg, { maxPixels: 384 * 256 - 1 }), 'too_many_pixels');
  assert.match(error.message, /384x256/);
  await assert.rejects(preprocessImage(jpeg, { maxPixels: Number.NaN }), RangeError);
});

test('a plain JPEG is read from its own header (one pipeline): size, components and EXIF orientation', async () => {
  const { readJpegHeader } = await import('../../server/preprocess/jpeg-header.ts');
  const upright = await sharp(fixture('exif-6.jpg')).rotate().resize(300, 480).jpeg({ quality: 92 }).toBuffer();
  const stored = await sharp(upright).rotate(-90).withMetadata({ orientation: 6 }).jpeg({ quality: 92 }).toBuffer();
  assert.deepEqual(readJpegHeader(stored), { width: 480, height: 300, components: 3, orientation: 6, sequential: true });
  assert.equal(readJpegHeader(await sharp(upright).jpeg({ progressive: true }).toBuffer())?.sequential, false);
  const out = await preprocessImage(stored, LIMITS);
  assert.deepEqual([out.width, out.height, out.format], [300, 480, 'jpeg'], 'the upright size');
  // Turned upright by EXIF, the picture is the upright one (up to a second JPEG encoding).
  const reference = await preprocessImage(upright, LIMITS);
  assert.ok(difference(out.rgb, reference.rgb).mean < 1, `mean difference ${difference(out.rgb, reference.rgb).mean}`);
  assert.equal(readJpegHeader(Buffer.from('not a jpeg')), null);
  const grey = await sharp({ create: { width: 256, height: 256, channels: 3, background: '#808080' } }).toColourspace('b-w').jpeg().toBuffer();
  assert.equal(readJpegHeader(grey)?.components, 1);
});

test('a small plain JPEG is decoded in this thread: bit-identical to Pillow, colour and grey', async () => {
  for (const file of ['photo.jpg', 'grey.jpg']) {
    const bytes = fixture(file);
    const { width, height } = await sharp(bytes).metadata();
    assert.ok(width * height <= IN_THREAD_MAX_PIXELS, `${file} is small enough for the in-thread path`);
    const { rgb } = await preprocessImage(bytes, LIMITS);
    assert.deepEqual(difference(rgb, gunzipSync(fixture(`${file}.rgb.gz`))), { mean: 0, max: 0 }, file);
  }
});

test('the in-thread decoder recovers from damaged JPEGs: each is named, and the next photo is exact again', async () => {
  const jpeg = fixture('photo.jpg');
  const reference = gunzipSync(fixture('photo.jpg.rgb.gz'));
  for (const cut of [0.25, 0.5, 0.9]) {
    await rejectsWith(preprocessImage(jpeg.subarray(0, Math.floor(jpeg.length * cut)), LIMITS), 'corrupt_image');
    const garbled = Buffer.from(jpeg);
    for (let i = 700; i < garbled.length - 2; i += 997) garbled[i] ^= 0x5a; // scan data only: the header stays readable
    await preprocessImage(garbled, LIMITS).catch((error: unknown) => assert.ok(error instanceof ServiceError, String(error)));
    assert.deepEqual(difference((await preprocessImage(jpeg, LIMITS)).rgb, reference), { mean: 0, max: 0 });
  }
});
