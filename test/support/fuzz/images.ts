/**
 * Mutated images: real photos and small images of every decoded format (made with sharp, plus
 * the preprocessing fixtures), damaged the ways files get damaged or forged: bit flips,
 * overwritten runs, truncation, inserted and deleted bytes, wrong or swapped magic numbers,
 * huge or zero dimensions declared in the header (with a valid checksum where the format has
 * one), dropped or repeated chunks, and concatenations.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { PHOTOS_DIR, REPO_ROOT } from '../../../kit/paths.ts';
import { IMAGE_OUTCOMES } from './cases.ts';
import type { ImageCase, Outcome } from './cases.ts';
import type { FuzzRng } from './rng.ts';

export type Format = 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'heif';

export interface BaseImage {
  name: string;
  format: Format;
  bytes: Buffer;
}

const PREPROCESS_FIXTURES = `${REPO_ROOT}test/fixtures/preprocess`;

/** The photos, the preprocessing fixtures, and small images of each format and flavour made from a photo. */
export async function makeBaseImages(): Promise<BaseImage[]> {
  const bases: BaseImage[] = [];
  const add = (name: string, bytes: Buffer) => {
    const format = sniff(bytes);
    if (!format) throw new Error(`base image ${name} has no known signature`);
    bases.push({ name, format, bytes });
  };
  for (const file of readdirSync(PHOTOS_DIR).filter((f) => f.endsWith('.jpg')).sort()) add(`photo:${file}`, readFileSync(`${PHOTOS_DIR}/${file}`));
  for (const file of readdirSync(PREPROCESS_FIXTURES).filter((f) => /\.(jpg|png|gif|webp|tiff)$/.test(f)).sort()) {
    add(`fixture:${file}`, readFileSync(`${PREPROCESS_FIXTURES}/${file}`));
  }
  const source = sharp(readFileSync(`${PHOTOS_DIR}/chelsea.jpg`)).resize(48, 36, { fit: 'fill' });
  const alpha = source.clone().ensureAlpha(0.5);
  const made: Array<[string, Promise<Buffer>]> = [
    ['png-rgb', source.clone().png().toBuffer()],
    ['png-rgba', alpha.clone().png().toBuffer()],
    ['png-palette', source.clone().png({ palette: true, colours: 16 }).toBuffer()],
    ['png-16bit', source.clone().toColourspace('rgb16').png().toBuffer()],
    ['png-grey', source.clone().greyscale().png().toBuffer()],
    ['png-interlaced', source.clone().png({ progressive: true }).toBuffer()],
    ['webp-lossy', source.clone().webp({ quality: 50 }).toBuffer()],
    ['webp-lossless', source.clone().webp({ lossless: true }).toBuffer()],
    ['webp-alpha', alpha.clone().webp({ quality: 60 }).toBuffer()],
    ['gif', source.clone().gif().toBuffer()],
    ['tiff-none', source.clone().tiff({ compression: 'none' }).toBuffer()],
    ['tiff-lzw', source.clone().tiff({ compression: 'lzw' }).toBuffer()],
    ['tiff-deflate', source.clone().tiff({ compression: 'deflate' }).toBuffer()],
    ['tiff-jpeg', source.clone().tiff({ compression: 'jpeg' }).toBuffer()],
    ['tiff-tiled', source.clone().tiff({ tile: true, tileWidth: 16, tileHeight: 16 }).toBuffer()],
    ['jpeg-progressive', source.clone().jpeg({ progressive: true }).toBuffer()],
    ['jpeg-444', source.clone().jpeg({ chromaSubsampling: '4:4:4' }).toBuffer()],
    ['jpeg-grey', source.clone().greyscale().jpeg().toBuffer()],
    ['avif', source.clone().avif({ quality: 40, effort: 0 }).toBuffer()],
  ];
  for (const [name, bytes] of made) add(`made:${name}`, await bytes);
  return bases;
}

/** A small real image for requests that are valid apart from the field under test. */
export function tinyPng(): Promise<Buffer> {
  return sharp(readFileSync(`${PHOTOS_DIR}/coffee.jpg`)).resize(32, 24, { fit: 'fill' }).png().toBuffer();
}

const HEIF_BRANDS = ['avif', 'avis', 'heic', 'heix', 'mif1'];

export function sniff(b: Buffer): Format | null {
  const ascii = (from: number, to: number) => b.subarray(from, to).toString('latin1');
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (ascii(0, 8) === '\x89PNG\r\n\x1a\n') return 'png';
  if (ascii(0, 4) === 'GIF8') return 'gif';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'webp';
  if (['II*\0', 'MM\0*'].includes(ascii(0, 4))) return 'tiff';
  if (ascii(4, 8) === 'ftyp' && HEIF_BRANDS.includes(ascii(8, 12))) return 'heif';
  return null;
}

/** Each format's signature, as it starts a file (WebP's holds a size that is patched in). */
const SIGNATURES: Record<Format, Buffer> = {
  jpeg: Buffer.from([0xff, 0xd8, 0xff]),
  png: Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'),
  gif: Buffer.from('GIF89a'),
  webp: Buffer.from('RIFF\0\0\0\0WEBP', 'latin1'),
  tiff: Buffer.from('II*\0', 'latin1'),
  heif: Buffer.from('\0\0\0\x1cftypavif', 'latin1'),
};

// ---------------------------------------------------------------------------------------
// Declared dimensions, patched into each format's header.

/** Width and height pairs: past every limit, just over and just under --max-pixels (40 MP), zero, and invalid. */
const DIMENSIONS: ReadonlyArray<readonly [number, number]> = [
  [100_000, 100_000],
  [65_535, 65_535],
  [65_535, 1],
  [1, 65_535],
  [6_325, 6_325], // 40 005 625: just over 40 MP
  [40_001, 1_000],
  [6_324, 6_324], // 39 992 976: just under
  [40_000, 1_000], // exactly 40 MP: allowed
  [0, 0],
  [0, 36],
  [48, 0],
  [0x7fff_ffff, 1],
  [0xffff_ffff, 0xffff_ffff],
  [16_384, 16_384],
  [16_383, 16_383],
];

export interface Patched {
  bytes: Buffer;
  /** The dimensions the header now declares (after a format's own caps), when the patch applied. */
  width: number;
  height: number;
}

function patchPng(input: Buffer, width: number, height: number, fixCrc: boolean): Patched | null {
  if (input.length < 33 || input.toString('latin1', 12, 16) !== 'IHDR') return null;
  const out = Buffer.from(input);
  out.writeUInt32BE(width >>> 0, 16);
  out.writeUInt32BE(height >>> 0, 20);
  if (fixCrc) out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return { bytes: out, width, height };
}

/** The offset of the first SOFn segment's marker in a JPEG, or -1. */
function jpegSof(b: Buffer): number {
  let at = 2;
  while (at + 4 <= b.length) {
    if (b[at] !== 0xff) return -1;
    const marker = b[at + 1];
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return -1;
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) return at;
    at += 2 + b.readUInt16BE(at + 2);
  }
  return -1;
}

function patchJpeg(input: Buffer, width: number, height: number): Patched | null {
  const sof = jpegSof(input);
  if (sof < 0 || sof + 9 > input.length) return null;
  const out = Buffer.from(input);
  const w = Math.min(width, 0xffff);
  const h = Math.min(height, 0xffff);
  out.writeUInt16BE(h, sof + 5);
  out.writeUInt16BE(w, sof + 7);
  return { bytes: out, width: w, height: h };
}

/** The offset of the first image descriptor in a GIF, or -1. */
function gifImageDescriptor(b: Buffer): number {
  if (b.length < 13) return -1;
  const flags = b[10];
  let at = 13 + (flags & 0x80 ? 3 * 2 ** ((flags & 7) + 1) : 0);
  while (at < b.length) {
    if (b[at] === 0x2c) return at;
    if (b[at] !== 0x21) return -1;
    at += 2;
    while (at < b.length && b[at] !== 0) at += b[at] + 1;
    at++;
  }
  return -1;
}

function patchGif(input: Buffer, width: number, height: number, rng: FuzzRng): Patched | null {
  if (input.length < 13) return null;
  const out = Buffer.from(input);
  const w = Math.min(width, 0xffff);
  const h = Math.min(height, 0xffff);
  const where = rng.int(3); // the logical screen, the first frame, or both
  if (where !== 1) {
    out.writeUInt16LE(w, 6);
    out.writeUInt16LE(h, 8);
  }
  const descriptor = gifImageDescriptor(out);
  if (where !== 0 && descriptor >= 0 && descriptor + 9 <= out.length) {
    out.writeUInt16LE(w, descriptor + 5);
    out.writeUInt16LE(h, descriptor + 7);
  }
  return { bytes: out, width: w, height: h };
}

function patchWebp(input: Buffer, width: number, height: number): Patched | null {
  if (input.length < 30) return null;
  const out = Buffer.from(input);
  const chunk = out.toString('latin1', 12, 16);
  if (chunk === 'VP8X') {
    const w = Math.min(Math.max(width, 1), 2 ** 24);
    const h = Math.min(Math.max(height, 1), 2 ** 24);
    out.writeUIntLE(w - 1, 24, 3);
    out.writeUIntLE(h - 1, 27, 3);
    return { bytes: out, width: w, height: h };
  }
  if (chunk === 'VP8L') {
    const w = Math.min(Math.max(width, 1), 2 ** 14);
    const h = Math.min(Math.max(height, 1), 2 ** 14);
    const bits = out.readUInt32LE(21);
    const packed = ((w - 1) | ((h - 1) << 14) | (bits & 0xf000_0000)) >>> 0;
    out.writeUInt32LE(packed, 21);
    return { bytes: out, width: w, height: h };
  }
  if (chunk === 'VP8 ' && out[23] === 0x9d && out[24] === 0x01 && out[25] === 0x2a) {
    const w = Math.min(width, 0x3fff);
    const h = Math.min(height, 0x3fff);
    out.writeUInt16LE(w, 26);
    out.writeUInt16LE(h, 28);
    return { bytes: out, width: w, height: h };
  }
  return null;
}

function patchTiff(input: Buffer, width: number, height: number): Patched | null {
  if (input.length < 8) return null;
  const le = input.toString('latin1', 0, 2) === 'II';
  const out = Buffer.from(input);
  const u16 = (at: number) => (le ? out.readUInt16LE(at) : out.readUInt16BE(at));
  const u32 = (at: number) => (le ? out.readUInt32LE(at) : out.readUInt32BE(at));
  const w16 = (v: number, at: number) => (le ? out.writeUInt16LE(v, at) : out.writeUInt16BE(v, at));
  const w32 = (v: number, at: number) => (le ? out.writeUInt32LE(v >>> 0, at) : out.writeUInt32BE(v >>> 0, at));
  const ifd = u32(4);
  if (ifd + 2 > out.length) return null;
  const count = u16(ifd);
  let patched = 0;
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + 12 * i;
    if (entry + 12 > out.length) break;
    const tag = u16(entry);
    if (tag !== 256 && tag !== 257) continue;
    w16(4, entry + 2); // LONG, whatever it was
    w32(1, entry + 4);
    w32(tag === 256 ? width : height, entry + 8);
    patched++;
  }
  return patched === 2 ? { bytes: out, width, height } : null;
}

export function declareDimensions(bytes: Buffer, width: number, height: number, rng: FuzzRng, fixCrc = true): Patched | null {
  switch (sniff(bytes)) {
    case 'png':
      return patchPng(bytes, width, height, fixCrc);
    case 'jpeg':
      return patchJpeg(bytes, width, height);
    case 'gif':
      return patchGif(bytes, width, height, rng);
    case 'webp':
      return patchWebp(bytes, width, height);
    case 'tiff':
      return patchTiff(bytes, width, height);
    default:
      return null;
  }
}

// ---------------------------------------------------------------------------------------
// Structure: PNG chunks and JPEG segments dropped, repeated or swapped.

interface Span {
  start: number;
  end: number;
}

function pngChunks(b: Buffer): Span[] {
  const spans: Span[] = [];
  let at = 8;
  while (at + 12 <= b.length) {
    const end = at + 12 + b.readUInt32BE(at);
    if (end > b.length) break;
    spans.push({ start: at, end });
    at = end;
  }
  return spans;
}

function jpegSegments(b: Buffer): Span[] {
  const spans: Span[] = [];
  let at = 2;
  while (at + 4 <= b.length && b[at] === 0xff) {
    const marker = b[at + 1];
    if (marker === 0xda || marker === 0xd9) break;
    const end = at + 2 + b.readUInt16BE(at + 2);
    if (end > b.length) break;
    spans.push({ start: at, end });
    at = end;
  }
  return spans;
}

function restructure(bytes: Buffer, rng: FuzzRng): { bytes: Buffer; note: string } | null {
  const format = sniff(bytes);
  const spans = format === 'png' ? pngChunks(bytes) : format === 'jpeg' ? jpegSegments(bytes) : [];
  if (spans.length === 0) return null;
  const span = rng.pick(spans);
  const piece = bytes.subarray(span.start, span.end);
  const name = format === 'png' ? piece.toString('latin1', 4, 8) : `FF${piece[1].toString(16).toUpperCase()}`;
  switch (rng.int(3)) {
    case 0:
      return { bytes: Buffer.concat([bytes.subarray(0, span.start), bytes.subarray(span.end)]), note: `drop ${name}` };
    case 1:
      return { bytes: Buffer.concat([bytes.subarray(0, span.end), piece, bytes.subarray(span.end)]), note: `repeat ${name}` };
    default: {
      const other = rng.pick(spans);
      const [first, second] = span.start < other.start ? [span, other] : [other, span];
      if (first === second) return null;
      const swapped = Buffer.concat([
        bytes.subarray(0, first.start),
        bytes.subarray(second.start, second.end),
        bytes.subarray(first.end, second.start),
        bytes.subarray(first.start, first.end),
        bytes.subarray(second.end),
      ]);
      return { bytes: swapped, note: `swap ${name}` };
    }
  }
}

// ---------------------------------------------------------------------------------------

interface Mutated {
  bytes: Buffer;
  note: string;
  /** Set by a mutation whose outcome the README settles (a header past the pixel limit). */
  expect?: readonly Outcome[];
}

type Mutation = (bytes: Buffer, rng: FuzzRng, bases: readonly BaseImage[], maxPixels: number) => Mutated | null;

const MUTATIONS: ReadonlyArray<readonly [number, Mutation]> = [
  [
    6,
    (bytes, rng) => {
      const out = Buffer.from(bytes);
      // Mostly past the header, where a photo keeps decoding into something.
      const flips = rng.logBetween(1, 64);
      for (let i = 0; i < flips; i++) out[rng.int(out.length)] ^= 1 << rng.int(8);
      return { bytes: out, note: `flip ${flips} bits` };
    },
  ],
  [
    4,
    (bytes, rng) => {
      const out = Buffer.from(bytes);
      const length = rng.logBetween(1, 512);
      const at = rng.int(out.length);
      const fill = rng.pick(['zero', 'ff', 'random', 'copy'] as const);
      const run = fill === 'zero' ? Buffer.alloc(length) : fill === 'ff' ? Buffer.alloc(length, 0xff) : fill === 'random' ? rng.bytes(length) : bytes.subarray(rng.int(bytes.length)).subarray(0, length);
      run.copy(out, at, 0, Math.min(run.length, out.length - at));
      return { bytes: out, note: `overwrite ${length} bytes at ${at} (${fill})` };
    },
  ],
  [
    5,
    (bytes, rng) => {
      // Anywhere, but often inside the header.
      const at = rng.chance(0.3) ? rng.between(1, Math.min(64, bytes.length - 1)) : rng.between(1, bytes.length - 1);
      return { bytes: bytes.subarray(0, at), note: `truncate at ${at}/${bytes.length}` };
    },
  ],
  [
    2,
    (bytes, rng) => {
      const at = rng.int(bytes.length + 1);
      const n = rng.logBetween(1, 256);
      return { bytes: Buffer.concat([bytes.subarray(0, at), rng.bytes(n), bytes.subarray(at)]), note: `insert ${n} bytes at ${at}` };
    },
  ],
  [
    2,
    (bytes, rng) => {
      const at = rng.int(bytes.length);
      const n = rng.logBetween(1, Math.max(1, bytes.length - at - 1));
      return { bytes: Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + n)]), note: `delete ${n} bytes at ${at}` };
    },
  ],
  [
    3,
    (bytes, rng) => {
      const out = Buffer.from(bytes);
      const n = rng.between(1, 4);
      for (let i = 0; i < n; i++) out[rng.int(Math.min(12, out.length))] = rng.int(256);
      return { bytes: out, note: 'wrong magic' };
    },
  ],
  [
    3,
    (bytes, rng) => {
      const own = sniff(bytes);
      const other = rng.pick((Object.keys(SIGNATURES) as Format[]).filter((f) => f !== own));
      const strip = own === 'webp' ? 12 : own ? SIGNATURES[own].length : 0;
      const body = rng.chance(0.5) ? bytes.subarray(strip) : bytes;
      return { bytes: Buffer.concat([SIGNATURES[other], body]), note: `${own ?? '?'} with ${other} magic` };
    },
  ],
  [
    6,
    (bytes, rng, _bases, maxPixels) => {
      const [width, height] = rng.pick(DIMENSIONS);
      const fixCrc = rng.chance(0.85);
      const patched = declareDimensions(bytes, width, height, rng, fixCrc);
      if (!patched) return null;
      const format = sniff(bytes);
      const note = `declare ${patched.width}x${patched.height}${format === 'png' && !fixCrc ? ' (stale CRC)' : ''}`;
      // README: too_many_pixels is "checked from its header, before decoding". PNG and JPEG
      // headers are read as they are; a valid one past the limit is refused as such.
      const valid = (format === 'png' && fixCrc && width <= 0x7fff_ffff && height <= 0x7fff_ffff) || format === 'jpeg';
      if (valid && patched.width > 0 && patched.height > 0 && patched.width * patched.height > maxPixels) {
        return { bytes: patched.bytes, note, expect: ['too_many_pixels'] };
      }
      return { bytes: patched.bytes, note };
    },
  ],
  [
    3,
    (bytes, rng) => {
      const result = restructure(bytes, rng);
      return result;
    },
  ],
  [
    3,
    (bytes, rng, bases) => {
      const other = rng.pick(bases);
      switch (rng.int(4)) {
        case 0:
          return { bytes: Buffer.concat([bytes, other.bytes]), note: `+ ${other.name}` };
        case 1:
          return { bytes: Buffer.concat([bytes, rng.bytes(rng.logBetween(1, 4096))]), note: '+ random tail' };
        case 2:
          return { bytes: Buffer.concat([rng.bytes(rng.logBetween(1, 64)), bytes]), note: 'random prefix +' };
        default: {
          const half = bytes.subarray(0, rng.between(1, bytes.length));
          return { bytes: Buffer.concat([half, other.bytes.subarray(rng.int(other.bytes.length))]), note: `spliced with ${other.name}` };
        }
      }
    },
  ],
];

/** `count` mutated images: a base, then one to three mutations. */
export function generateImages(rng: FuzzRng, count: number, bases: readonly BaseImage[], maxPixels: number): Array<ImageCase & { expect: readonly Outcome[] }> {
  const cases: Array<ImageCase & { expect: readonly Outcome[] }> = [];
  while (cases.length < count) {
    const base = rng.pick(bases);
    let bytes = base.bytes;
    const notes: string[] = [];
    let expect: readonly Outcome[] | undefined;
    const rounds = rng.weighted([
      [7, 1],
      [2, 2],
      [1, 3],
    ]);
    for (let i = 0; i < rounds; i++) {
      const result = rng.weighted(MUTATIONS)(bytes, rng, bases, maxPixels);
      if (!result || result.bytes.length === 0) continue;
      bytes = result.bytes;
      notes.push(result.note);
      // Only a last-and-only mutation keeps its settled outcome.
      expect = rounds === 1 ? result.expect : undefined;
    }
    if (notes.length === 0) continue;
    cases.push({ kind: `image/${base.format}`, recipe: `${base.name}: ${notes.join(', ')}`, bytes, expect: expect ?? IMAGE_OUTCOMES });
  }
  return cases;
}
