/**
 * The preprocess pool with its real worker thread: images come back through slots of shared
 * memory, or in buffers of their own once every slot is held, always exactly as
 * preprocessImage makes them, and every slot is given back whatever happens to its request.
 *
 * Run: node --import tsx --test test/integration/preprocess-pool.test.ts
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PreprocessPool } from '../../server/preprocess/preprocess-pool.ts';
import type { Preprocessed } from '../../server/preprocess/preprocess-pool.ts';
import { preprocessImage } from '../../server/preprocess/preprocess-image.ts';
import { ServiceError } from '../../shared/protocol/errors.ts';
import { createLogger } from '../../lib/log.ts';
import { PHOTOS_DIR } from '../../kit/paths.ts';

const SLOTS = 2;
const MAX_PIXELS = 40_000_000;
const photos = ['chelsea', 'coffee', 'astronaut', 'rocket', 'camera', 'hubble_deep_field'].map((name) => readFileSync(`${PHOTOS_DIR}/${name}.jpg`));
const expected: Buffer[] = [];
let pool: PreprocessPool;

before(async () => {
  pool = new PreprocessPool(1, MAX_PIXELS, createLogger('silent'), SLOTS);
  for (const photo of photos) expected.push(Buffer.from((await preprocessImage(photo, { maxPixels: MAX_PIXELS })).rgb));
});

after(async () => {
  await pool?.stop();
});

// Each call gets a copy of its own: the pool takes ownership of the bytes it is given.
const submit = (i: number) => pool.preprocess(Uint8Array.from(photos[i % photos.length]));

test('more images in flight than slots: each is exact, and a held one is never overwritten', async () => {
  const held: Preprocessed[] = await Promise.all(photos.map((_, i) => submit(i)));
  assert.equal(pool.imageSlotsInUse, SLOTS, 'the first ones took the slots, the rest came in buffers of their own');
  held.forEach((image, i) => assert.ok(Buffer.from(image.rgb).equals(expected[i]), `image ${i}`));
  // More requests through the pool while those are held: slots in use are not handed out again.
  for (let round = 0; round < 3; round++) {
    const [first, second] = await Promise.all([submit(round), submit(round + 1)]);
    first.release();
    second.release();
  }
  held.forEach((image, i) => assert.ok(Buffer.from(image.rgb).equals(expected[i]), `image ${i}, still held`));
  for (const image of held) {
    image.release();
    image.release(); // a second release is harmless
  }
  assert.equal(pool.imageSlotsInUse, 0);
});

test('a slot is given back when its image is refused, and reused by the next one', async () => {
  for (let i = 0; i < 2 * SLOTS + 1; i++) {
    const broken = Uint8Array.from(photos[0].subarray(0, photos[0].length >> 1));
    await assert.rejects(pool.preprocess(broken), (error: unknown) => error instanceof ServiceError && error.code === 'corrupt_image');
    assert.equal(pool.imageSlotsInUse, 0, 'a refused image holds no slot');
  }
  const image = await submit(1);
  assert.equal(pool.imageSlotsInUse, 1);
  assert.ok(Buffer.from(image.rgb).equals(expected[1]));
  image.release();
  assert.equal(pool.imageSlotsInUse, 0);
});

test('a file given twice (the first call moved its memory to the worker) is refused the second time, not left unanswered', async () => {
  const bytes = Uint8Array.from(photos[1]);
  const first = await pool.preprocess(bytes);
  assert.ok(Buffer.from(first.rgb).equals(expected[1]));
  first.release();
  assert.equal(bytes.byteLength, 0, 'the pool took the buffer');
  await assert.rejects(pool.preprocess(bytes), (error: unknown) => error instanceof ServiceError && error.code === 'unsupported_image');
  assert.equal(pool.imageSlotsInUse, 0);
});
