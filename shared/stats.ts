/**
 * Percentiles and summaries of latency samples (the benchmark, the live dashboard). Pure functions, no I/O, so they are unit-tested.
 */

export interface Summary {
  count: number;
  mean: number;
  min: number;
  max: number;
  p50: number;
  p90: number;
  p99: number;
}

/**
 * The q-th percentile (0 ≤ q ≤ 100) of `sorted` (ascending), interpolating linearly between the
 * two nearest ranks, as numpy's default does: with few samples (a slow engine gives tens per
 * step) nearest-rank would jump between samples, interpolation moves smoothly. NaN when empty.
 */
export function percentileOfSorted(sorted: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 100)) throw new RangeError(`percentile must be within 0..100, got ${q}`);
  if (sorted.length === 0) return Number.NaN;
  const rank = (q / 100) * (sorted.length - 1);
  const below = Math.floor(rank);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (rank - below);
}

export function percentile(values: readonly number[], q: number): number {
  return percentileOfSorted(sortedCopy(values), q);
}

export function summarize(values: readonly number[]): Summary {
  const sorted = sortedCopy(values);
  const count = sorted.length;
  return {
    count,
    mean: count === 0 ? Number.NaN : sorted.reduce((sum, v) => sum + v, 0) / count,
    min: count === 0 ? Number.NaN : sorted[0],
    max: count === 0 ? Number.NaN : sorted[count - 1],
    p50: percentileOfSorted(sorted, 50),
    p90: percentileOfSorted(sorted, 90),
    p99: percentileOfSorted(sorted, 99),
  };
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** Mean and (population) standard deviation in one pass; for weight and logit statistics. */
export function meanAndStd(values: ArrayLike<number>): { mean: number; std: number } {
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    sumSq += values[i] * values[i];
  }
  const average = sum / values.length;
  return { mean: average, std: Math.sqrt(sumSq / values.length - average ** 2) };
}

/** Rounds for reports; NaN and ±Infinity become null, which JSON can carry and readers can test. */
export function round(value: number, digits = 1): number | null {
  if (!Number.isFinite(value)) return null;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function sortedCopy(values: readonly number[]): number[] {
  for (const v of values) if (Number.isNaN(v)) throw new RangeError('NaN among the samples');
  return [...values].sort((a, b) => a - b);
}
