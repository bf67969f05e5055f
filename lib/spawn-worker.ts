/**
 * Starts a worker thread on a TypeScript entry module. Node 20 does not hand the parent's
 * `--import tsx` loader to worker threads, so each worker registers tsx itself before
 * importing its entry.
 */
import { Worker } from 'node:worker_threads';
import type { WorkerOptions } from 'node:worker_threads';

const tsxApi = import.meta.resolve('tsx/esm/api');

export function spawnWorker(entry: URL, options: WorkerOptions = {}): Worker {
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
