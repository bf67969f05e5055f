/**
 * Runs one task in its own worker thread and settles once: with the worker's final message,
 * its error, or its exit before it said anything. Progress messages may come before the end.
 */
import { spawnWorker } from './spawn-worker.ts';

export type TaskMessage<Progress> = { type: 'done' } | { type: 'failed'; message: string } | (Progress & { type: 'progress' });

export interface WorkerTaskOptions<Progress> {
  /** Named in errors: "<what> failed: …". */
  what: string;
  workerData: unknown;
  onProgress?: (progress: Progress & { type: 'progress' }) => void;
}

export function runWorkerTask<Progress = never>(entry: URL, options: WorkerTaskOptions<Progress>): Promise<void> {
  return new Promise((resolve, reject) => {
    const worker = spawnWorker(entry, { workerData: options.workerData });
    let settled = false;
    worker.on('message', (message: TaskMessage<Progress>) => {
      if (message.type === 'progress') {
        options.onProgress?.(message);
        return;
      }
      settled = true;
      if (message.type === 'done') resolve();
      else reject(new Error(`${options.what} failed: ${message.message}`));
      void worker.terminate();
    });
    worker.once('error', (error) => {
      if (!settled) reject(error);
      settled = true;
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`the worker for ${options.what} exited with code ${code} before finishing`));
      settled = true;
    });
  });
}
