/**
 * A small seeded PRNG whose output is identical on every machine and JS engine: only 32-bit
 * integer operations and exact IEEE additions/multiplications, no Math.random, no Math.sin/log
 * (whose last bits are implementation-defined). Generated model weights depend on it, and the
 * weights' SHA-256 must not depend on where they were generated.
 *
 * Generator: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator), seeded by splitmix32.
 */

/** splitmix32 step: turns any 32-bit seed into well-mixed state words. */
function splitmix32(state: number): [next: number, out: number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

/** FNV-1a over the UTF-16 code units of `text`: derives independent streams from names. */
export function hashString(text: string, basis = 0x811c9dc5): number {
  let h = basis >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** √3 / 65536: scales a centred sum of four uint16 uniforms to unit variance (see normal()). */
const IRWIN_HALL_SCALE = Math.sqrt(3) / 65536;

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
    }
    let s = seed | 0;
    let out: number;
    [s, out] = splitmix32(s);
    this.a = out | 0;
    [s, out] = splitmix32(s);
    this.b = out | 0;
    [s, out] = splitmix32(s);
    this.c = out | 0;
    [s, out] = splitmix32(s);
    this.d = out | 0;
    // Discard the first outputs, as sfc32's author recommends.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** An independent stream for `label` (e.g. a layer name), stable whatever order it is asked in. */
  static derive(seed: number, label: string): Prng {
    return new Prng(hashString(label, hashString(String(seed))));
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Integer uniform in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /**
   * Approximately standard normal: Irwin–Hall sum of four uint16 uniforms, centred and scaled
   * to unit variance. Bounded at ±2√3 ≈ ±3.46σ (like a truncated normal), exact integer
   * arithmetic up to the final multiply, two generator calls per sample.
   */
  normal(): number {
    const u = this.nextUint32();
    const v = this.nextUint32();
    return ((u & 0xffff) + (u >>> 16) + (v & 0xffff) + (v >>> 16) - 131070) * IRWIN_HALL_SCALE;
  }

  /** Fills `out` with normal(mean, std) samples (rounded to float32 by the array). */
  fillNormal(out: Float32Array, std: number, mean = 0): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }

  /** Fills `out` with uniform samples in [lo, hi). */
  fillUniform(out: Float32Array, lo: number, hi: number): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.range(lo, hi);
    return out;
  }
}
