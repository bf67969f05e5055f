/**
 * Samples a process's resident memory (VmRSS, which covers all its threads: the hub's workers
 * are threads) from /proc at a fixed interval.
 */
import { readFileSync } from 'node:fs';

export interface RssSummary {
  samples: number;
  startMiB: number | null;
  peakMiB: number | null;
  endMiB: number | null;
}

export interface RssSampler {
  stop(): RssSummary;
}

/** VmRSS in MiB, or null when the process is gone or /proc is not there (not Linux). */
export function readRssMiB(pid: number): number | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) / 1024 : null;
}

export function sampleRss(pid: number, intervalMs: number): RssSampler {
  const summary: RssSummary = { samples: 0, startMiB: null, peakMiB: null, endMiB: null };
  const take = () => {
    const mib = readRssMiB(pid);
    if (mib === null) return;
    summary.samples++;
    summary.startMiB ??= mib;
    summary.peakMiB = Math.max(summary.peakMiB ?? mib, mib);
    summary.endMiB = mib;
  };
  take();
  const timer = setInterval(take, intervalMs);
  // A sampler must never be what keeps the bench alive.
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      take();
      return { ...summary };
    },
  };
}
