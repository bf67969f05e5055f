/**
 * Is the hub's memory stable? RSS when the warm-up ends (the start), the peak, the end, and
 * the trend over the second half of the load: a least-squares slope in MiB per minute, which a
 * single late spike barely moves but a steady leak shows plainly.
 */
import { percentile } from '../../shared/stats.ts';
import type { Sample } from './monitor.ts';

export interface MemorySummary {
  samples: number;
  /** The first sample at or after the warm-up (the last one if the load was shorter). */
  startMiB: number | null;
  startAtS: number | null;
  peakMiB: number | null;
  peakAtS: number | null;
  /** The sample taken when the load stopped, before SIGTERM. */
  endMiB: number | null;
  /**
   * Medians of the first and the last minute after the warm-up: single samples of a hub that
   * takes 20 MiB payloads swing by tens of MiB, the medians compare like with like.
   */
  firstMinuteMedianMiB: number | null;
  lastMinuteMedianMiB: number | null;
  /** Over samples from half the load (or the warm-up, if later) to the end; null with fewer than 3. */
  slopeMiBPerMin: number | null;
  slopeSamples: number;
  /** Seconds the slope's samples span: under a couple of minutes, the sawtooth of big payloads dominates it. */
  slopeSpanS: number;
}

/** Shorter windows than this say more about garbage-collection timing than about leaks. */
export const JUDGEABLE_SPAN_S = 120;

export function summarizeMemory(samples: readonly Sample[], warmupS: number, loadS: number): MemorySummary {
  const points = samples.filter((s): s is Sample & { rss_mib: number } => s.rss_mib !== null);
  const start = points.find((p) => p.t_s >= warmupS) ?? points[points.length - 1];
  const peak = points.reduce<(typeof points)[number] | undefined>((best, p) => (best === undefined || p.rss_mib > best.rss_mib ? p : best), undefined);
  const from = Math.max(warmupS, loadS / 2);
  const tail = points.filter((p) => p.t_s >= from);
  const separate = loadS >= warmupS + 120;
  const slope = tail.length >= 3 ? leastSquaresSlope(tail.map((p) => [p.t_s / 60, p.rss_mib])) : null;
  return {
    samples: points.length,
    startMiB: start?.rss_mib ?? null,
    startAtS: start?.t_s ?? null,
    peakMiB: peak?.rss_mib ?? null,
    peakAtS: peak?.t_s ?? null,
    endMiB: points[points.length - 1]?.rss_mib ?? null,
    // Only when the two minutes do not overlap: otherwise they compare a window with itself.
    firstMinuteMedianMiB: separate ? medianOrNull(points.filter((p) => p.t_s >= warmupS && p.t_s < warmupS + 60).map((p) => p.rss_mib)) : null,
    lastMinuteMedianMiB: separate ? medianOrNull(points.filter((p) => p.t_s >= loadS - 60).map((p) => p.rss_mib)) : null,
    slopeMiBPerMin: slope,
    slopeSamples: tail.length,
    slopeSpanS: tail.length === 0 ? 0 : tail[tail.length - 1].t_s - tail[0].t_s,
  };
}

function medianOrNull(values: number[]): number | null {
  return values.length === 0 ? null : percentile(values, 50);
}

export function leastSquaresSlope(points: ReadonlyArray<readonly [number, number]>): number | null {
  const n = points.length;
  if (n < 2) return null;
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - meanX) * (y - meanY);
    sxx += (x - meanX) ** 2;
  }
  return sxx === 0 ? null : sxy / sxx;
}
