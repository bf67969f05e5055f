/**
 * Worker-thread entry that generates the untrained model, so the hub's main thread stays free
 * to show progress (and answer health probes) meanwhile.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { generateUntrainedModel } from './generate.ts';
import type { ModelManifest } from './store.ts';

export type GenerateWorkerMessage =
  | { type: 'progress'; stage: string; done: number; total: number }
  | { type: 'done'; manifest: ModelManifest }
  | { type: 'failed'; message: string };

const port = parentPort!;
const { modelDir } = workerData as { modelDir: string };

generateUntrainedModel(modelDir, {
  onProgress: (stage, done, total) => port.postMessage({ type: 'progress', stage, done, total } satisfies GenerateWorkerMessage),
}).then(
  (manifest) => port.postMessage({ type: 'done', manifest } satisfies GenerateWorkerMessage),
  (error: unknown) =>
    port.postMessage({ type: 'failed', message: error instanceof Error ? error.message : String(error) } satisfies GenerateWorkerMessage),
);
