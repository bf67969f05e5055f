/**
 * Where the hub's CPU goes, thread by thread: per-thread utime + stime from
 * /proc/<pid>/task/<tid>/stat at the start and end of a measured window, grouped by what each
 * thread does. The hub names its worker threads (lib/thread-name.ts) and ONNX Runtime's pool
 * threads inherit the name; ZeroMQ names its own; the main thread's id is the process id.
 * What is left is Node's unnamed threads: libuv's pool, where sharp decodes and resizes (the
 * preprocess workers only hand images to it), and V8's GC and compiler threads.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { THREAD_NAMES } from '../lib/thread-name.ts';

export const THREAD_GROUPS = ['main', 'inference', 'preprocess', 'zeromq', 'libuv+v8'] as const;
export type ThreadGroup = (typeof THREAD_GROUPS)[number];

/** Cores used on average over the window by each group (1 = one core busy all the time). */
export type ThreadCpu = Record<ThreadGroup, number>;

export interface ThreadSnapshot {
  at: number;
  /** tid → [group, jiffies]. */
  threads: Map<string, { group: ThreadGroup; jiffies: number }>;
}

/** The kernel's USER_HZ: what /proc's jiffies count (100 on every Linux build that matters). */
const CLOCK_TICKS_PER_S = 100;

export function groupOf(tid: string, pid: number, comm: string): ThreadGroup {
  if (tid === String(pid)) return 'main';
  if (comm.startsWith(THREAD_NAMES.inference)) return 'inference';
  if (comm.startsWith(THREAD_NAMES.preprocess)) return 'preprocess';
  if (comm.startsWith('ZMQbg')) return 'zeromq';
  return 'libuv+v8';
}

/** Null when /proc is not there (not Linux) or the process is gone. */
export function threadSnapshot(pid: number): ThreadSnapshot | null {
  const at = performance.now();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  const threads: ThreadSnapshot['threads'] = new Map();
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      // The fields after the command name's ')' are fixed: utime and stime are the 12th and 13th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      threads.set(tid, { group: groupOf(tid, pid, comm), jiffies: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return { at, threads };
}

/**
 * Cores per group between two snapshots. A thread that started in the window counts from
 * zero; one that ended in it is missing from `after` and its last share is lost (rare: the
 * hub's threads live as long as it does).
 */
export function threadCpu(before: ThreadSnapshot | null, after: ThreadSnapshot | null): ThreadCpu | null {
  if (!before || !after || after.at <= before.at) return null;
  const seconds = (after.at - before.at) / 1000;
  const split = Object.fromEntries(THREAD_GROUPS.map((group) => [group, 0])) as ThreadCpu;
  for (const [tid, { group, jiffies }] of after.threads) {
    const used = jiffies - (before.threads.get(tid)?.jiffies ?? 0);
    split[group] += Math.max(0, used) / CLOCK_TICKS_PER_S / seconds;
  }
  return split;
}

/** `main 0.31  inference 1.52 …`, in cores. */
export function formatThreadCpu(split: ThreadCpu | null | undefined): string {
  if (!split) return '-';
  return THREAD_GROUPS.map((group) => `${group} ${split[group].toFixed(2)}`).join('  ');
}
