/**
 * The images the quantizer calibrates on and measures with, from models/calibration/ (see the
 * README there for their licences): each calibration photo plus seeded augmentations, and a
 * disjoint held-apart set (other photos plus seeded synthetic images). All become 224×224 RGB
 * uint8, resized with a cubic kernel and the aspect ratio not kept, as the hub's preprocessing
 * does; calibration measures ranges, so libvips' resize is close enough to Pillow's here.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

import { INPUT_SIZE, INPUT_VALUES_PER_IMAGE } from '../../../shared/caffe.ts';
import { Prng } from '../../prng.ts';
import { generateSyntheticImages } from '../../synthetic-images.ts';

export const CALIBRATION_DIR = fileURLToPath(new URL('../../../models/calibration/', import.meta.url));

export interface ImageSet {
  /** count × 224 × 224 × 3 RGB, concatenated. */
  rgb: Uint8Array;
  names: string[];
}

async function photos(folder: string): Promise<Array<{ name: string; bytes: Buffer }>> {
  const dir = path.join(CALIBRATION_DIR, folder);
  const files = (await readdir(dir)).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
  if (files.length === 0) throw new Error(`no images in ${dir}`);
  return Promise.all(files.map(async (name) => ({ name, bytes: await readFile(path.join(dir, name)) })));
}

/** SHA-256 over the names and bytes of every image used: part of the int8 model's key. */
export async function calibrationImagesSha256(): Promise<string> {
  const hash = createHash('sha256');
  for (const folder of ['calibrate', 'held-apart']) {
    for (const { name, bytes } of await photos(folder)) hash.update(`${folder}/${name}\0`).update(bytes);
  }
  return hash.digest('hex');
}

interface Augmentation {
  label: string;
  /** Fractions of the image kept: [left, top, width, height]. */
  crop?: [number, number, number, number];
  flop?: boolean;
  modulate?: { brightness: number; saturation: number; hue: number };
  /** y = a·x + b per channel. */
  linear?: [number, number];
}

/** Seeded: the same photos always give the same calibration set. */
function augmentations(rng: Prng, count: number): Augmentation[] {
  const out: Augmentation[] = [{ label: 'original' }];
  for (let i = 1; i < count; i++) {
    const kind = i % 3;
    const w = rng.range(0.55, 0.9);
    const h = rng.range(0.55, 0.9);
    const crop: [number, number, number, number] = [rng.range(0, 1 - w), rng.range(0, 1 - h), w, h];
    const a: Augmentation = { label: `aug${i}`, crop, flop: rng.uniform() < 0.5 };
    if (kind !== 1) a.modulate = { brightness: rng.range(0.6, 1.4), saturation: rng.range(0.5, 1.5), hue: Math.round(rng.range(-25, 25)) };
    if (kind !== 2) a.linear = [rng.range(0.7, 1.35), rng.range(-25, 25)];
    out.push(a);
  }
  return out;
}

async function render(bytes: Buffer, a: Augmentation): Promise<Uint8Array> {
  let image = sharp(bytes).removeAlpha().toColourspace('srgb');
  if (a.crop) {
    const meta = await sharp(bytes).metadata();
    const [fx, fy, fw, fh] = a.crop;
    const width = Math.max(1, Math.floor((meta.width ?? 1) * fw));
    const height = Math.max(1, Math.floor((meta.height ?? 1) * fh));
    image = image.extract({ left: Math.floor((meta.width ?? 1) * fx), top: Math.floor((meta.height ?? 1) * fy), width, height });
  }
  if (a.flop) image = image.flop();
  if (a.modulate) image = image.modulate(a.modulate);
  if (a.linear) image = image.linear(a.linear[0], a.linear[1]);
  // A second pipeline for the resize, so the colour operations are not reordered after it.
  const { data: full, info } = await image.raw().toBuffer({ resolveWithObject: true });
  const { data, info: out } = await sharp(full, { raw: { width: info.width, height: info.height, channels: info.channels } })
    .resize(INPUT_SIZE, INPUT_SIZE, { fit: 'fill', kernel: 'cubic' })
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (out.channels !== 3 || data.length !== INPUT_VALUES_PER_IMAGE) throw new Error(`calibration image came out ${out.width}×${out.height}×${out.channels}`);
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

function concat(images: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(images.length * INPUT_VALUES_PER_IMAGE);
  images.forEach((img, i) => out.set(img, i * INPUT_VALUES_PER_IMAGE));
  return out;
}

/** Every calibration photo in `perPhoto` versions (the original first), seeded by `seed`. */
export async function calibrationSet(seed: number, perPhoto: number): Promise<ImageSet> {
  const images: Uint8Array[] = [];
  const names: string[] = [];
  for (const { name, bytes } of await photos('calibrate')) {
    for (const a of augmentations(Prng.derive(seed, name), perPhoto)) {
      images.push(await render(bytes, a));
      names.push(`${name}#${a.label}`);
    }
  }
  return { rgb: concat(images), names };
}

/** The held-apart photos, then `synthetic` seeded synthetic images. */
export async function heldApartSet(seed: number, synthetic: number): Promise<ImageSet> {
  const images: Uint8Array[] = [];
  const names: string[] = [];
  for (const { name, bytes } of await photos('held-apart')) {
    images.push(await render(bytes, { label: 'original' }));
    names.push(name);
  }
  if (synthetic > 0) {
    const generated = generateSyntheticImages(seed, synthetic);
    for (let i = 0; i < synthetic; i++) {
      images.push(generated.subarray(i * INPUT_VALUES_PER_IMAGE, (i + 1) * INPUT_VALUES_PER_IMAGE));
      names.push(`synthetic-${seed}-${i}`);
    }
  }
  return { rgb: concat(images), names };
}
