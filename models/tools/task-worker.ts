/**
 * Worker-thread entry for generating the untrained model, so the hub's main thread stays free
 * to show progress and answer health probes, and the memory tfjs takes is returned when the
 * thread ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { generateUntrainedModel } from './generate.ts';
import type { ModelManifest } from './store.ts';

export type ModelTask = { task: 'generate'; modelDir: string };

export type TaskWorkerMessage =
  | { type: 'progress'; stage: string; done: number; total: number }
  | { type: 'generated'; manifest: ModelManifest }
  | { type: 'failed'; message: string };

const port = parentPort!;
const task = workerData as ModelTask;
const post = (message: TaskWorkerMessage) => port.postMessage(message);

async function run(): Promise<void> {
  const manifest = await generateUntrainedModel(task.modelDir, {
    onProgress: (stage, done, total) => post({ type: 'progress', stage, done, total }),
  });
  post({ type: 'generated', manifest });
}

run().catch((error: unknown) => post({ type: 'failed', message: error instanceof Error ? error.message : String(error) }));
