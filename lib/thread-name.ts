/**
 * Names the calling OS thread (Linux: its `comm`, as `top -H` and /proc/<pid>/task/<tid>/comm
 * show it). Node gives every thread of the process the name `node`, so without this neither a
 * person nor the benchmark can tell an inference worker from a decoder; threads the caller
 * creates afterwards (ONNX Runtime's intra-op pool) inherit the name, so their CPU counts with it.
 */
import { writeFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';

/** Linux keeps 15 bytes of a thread name. */
const MAX_NAME = 15;

/** Best effort: elsewhere than Linux, or without /proc, the thread simply keeps its name. */
export function nameThisThread(prefix: string): void {
  try {
    writeFileSync('/proc/thread-self/comm', `${prefix}-${threadId}`.slice(0, MAX_NAME));
  } catch {
    // not Linux, or /proc not mounted: a name is only a diagnostic
  }
}

/** The prefixes the hub's worker threads take (bench/thread-cpu.ts groups threads by them). */
export const THREAD_NAMES = { inference: 'hub-infer', preprocess: 'hub-prep' } as const;
