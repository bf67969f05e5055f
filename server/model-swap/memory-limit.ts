/**
 * How much memory the hub may use, for refusing a model swap that would not fit: a container's
 * cgroup limit when there is one (what the kernel enforces), else the machine's memory.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';

const MiB = 1024 * 1024;
/** Room left for the kernel, the page cache and the rest of the process' growth. */
const USABLE_SHARE = 0.9;

export function defaultSwapMemoryLimitMiB(): number {
  return Math.floor((Math.min(cgroupLimitBytes() ?? Infinity, totalmem()) * USABLE_SHARE) / MiB);
}

function cgroupLimitBytes(): number | undefined {
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const text = readFileSync(file, 'utf8').trim();
      const bytes = Number(text);
      // "max", or cgroup v1's "no limit" (a number near 2^63).
      if (Number.isFinite(bytes) && bytes > 0 && bytes < 2 ** 60) return bytes;
    } catch {
      // not there: try the next, or no container limit
    }
  }
  return undefined;
}
