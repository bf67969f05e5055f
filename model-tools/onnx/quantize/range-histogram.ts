/**
 * The range of one activation tensor over a calibration set, in one pass and little memory:
 * exact min/max, plus a histogram over the float32 bit patterns (sign, exponent and the top
 * 7 mantissa bits, so bins are 0.8 % wide relative to their value at every scale) from which a
 * percentile range is read without a second pass or a guessed bin range.
 */

const BINS = 1 << 16;
/** Drops the low 16 of float32's 32 bits: 1 sign + 8 exponent + 7 mantissa bits remain. */
const SHIFT = 16;

export type RangeMethod = { kind: 'minmax' } | { kind: 'percentile'; percentile: number };

export class RangeHistogram {
  min = Infinity;
  max = -Infinity;
  count = 0;
  private readonly bins = new Uint32Array(BINS);

  add(values: Float32Array): void {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    const bins = this.bins;
    let min = this.min;
    let max = this.max;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v < min) min = v;
      if (v > max) max = v;
      bins[bits[i] >>> SHIFT]++;
    }
    this.min = min;
    this.max = max;
    this.count += values.length;
  }

  /**
   * [low, high]: min/max, or the values beyond which lie (100 − percentile) % of the
   * positive (resp. negative) values, each tail cut on its own; never wider than min/max.
   */
  range(method: RangeMethod): [number, number] {
    if (this.count === 0) return [0, 0];
    if (method.kind === 'minmax') return [this.min, this.max];
    const tail = 1 - method.percentile / 100;
    return [-this.tailEdge(true, tail, -this.min), this.tailEdge(false, tail, this.max)];
  }

  /** The magnitude past which at most `tail` of one sign's values lie (bin's upper edge). */
  private tailEdge(negative: boolean, tail: number, extreme: number): number {
    if (!(extreme > 0)) return Math.max(extreme, 0);
    const base = negative ? BINS / 2 : 0;
    let signCount = 0;
    for (let b = 0; b < BINS / 2; b++) signCount += this.bins[base + b];
    const allowed = tail * signCount;
    let above = 0;
    const word = new Uint32Array(1);
    const asFloat = new Float32Array(word.buffer);
    // Positive-magnitude bins grow with the bit pattern; walk down from the largest.
    for (let b = BINS / 2 - 1; b >= 0; b--) {
      const n = this.bins[base + b];
      if (n === 0) continue;
      if (above + n > allowed) {
        word[0] = ((b + 1) << SHIFT) >>> 0; // upper edge of bin b, as a positive float
        return Math.min(asFloat[0], extreme);
      }
      above += n;
    }
    return extreme;
  }
}
