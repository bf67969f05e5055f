/**
 * Who used the CPU during a measurement: the hub, the bench itself, and everything else on
 * the machine. A benchmark on a shared 2-core machine is only as good as the cores it had,
 * so each measured window says how many cores other processes took from it.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Cores in use on average over the window (1 = one core busy all the time). */
export interface CpuShare {
  hub: number;
  bench: number;
  other: number;
}

export interface CpuSnapshot {
  busy: number;
  total: number;
  hub: number;
  bench: number;
}

/** Null when /proc is unavailable (not Linux): the figures are then simply not reported. */
export function cpuSnapshot(hubPid: number | null): CpuSnapshot | null {
  try {
    return { ...systemJiffies(), hub: hubPid === null ? 0 : processJiffies(String(hubPid)), bench: processJiffies('self') };
  } catch {
    return null;
  }
}

export function cpuShare(before: CpuSnapshot | null, after: CpuSnapshot | null): CpuShare | null {
  if (!before || !after || after.total <= before.total) return null;
  const cores = (jiffies: number) => (jiffies / (after.total - before.total)) * availableParallelism();
  const hub = after.hub - before.hub;
  const bench = after.bench - before.bench;
  return {
    hub: cores(hub),
    bench: cores(bench),
    // Never below zero: the counters are read at slightly different instants.
    other: Math.max(0, cores(after.busy - before.busy - hub - bench)),
  };
}

function systemJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  // cpu user nice system idle iowait irq softirq steal …
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const busy = user + nice + system + irq + softirq + (steal || 0);
  return { busy, total: busy + idle + (iowait || 0) };
}

/** utime + stime of every thread of the process, in the same jiffies as /proc/stat. */
function processJiffies(pid: string): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; the fields after its ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}
