/**
 * Worker-thread entry for the model tasks that take a lot of memory and CPU (generating the
 * untrained model, importing Keras weights), so the calling thread stays free to show progress
 * and answer health probes, and the memory tfjs and h5wasm take is returned when the thread ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ArchitectureName } from '../shared/model/resnet50.ts';
import { generateUntrainedModel } from './generate.ts';
import { importKerasWeights, KerasImportError } from './keras/import-weights.ts';
import type { ModelManifest } from '../model-store/store.ts';

export type ModelTask =
  | { task: 'generate'; modelDir: string }
  | {
      task: 'import';
      file: string;
      modelDir: string;
      source?: { url?: string; md5?: string };
      architecture?: ArchitectureName;
    };

export type TaskWorkerMessage =
  | { type: 'progress'; stage: string; done: number; total: number }
  | { type: 'generated'; manifest: ModelManifest }
  | { type: 'imported'; manifest: ModelManifest }
  /** userError: a problem with the input (shown without a stack), not a bug. */
  | { type: 'failed'; message: string; userError?: boolean; stack?: string };

const port = parentPort!;
const task = workerData as ModelTask;
const post = (message: TaskWorkerMessage) => port.postMessage(message);
const onProgress = (stage: string, done: number, total: number) => post({ type: 'progress', stage, done, total });

async function run(): Promise<void> {
  switch (task.task) {
    case 'generate': {
      const manifest = await generateUntrainedModel(task.modelDir, { onProgress });
      post({ type: 'generated', manifest });
      return;
    }
    case 'import': {
      const { file, modelDir, source, architecture } = task;
      const manifest = await importKerasWeights(file, { modelDir, source, architecture, onProgress });
      post({ type: 'imported', manifest });
      return;
    }
  }
}

run().catch((error: unknown) =>
  post({
    type: 'failed',
    message: error instanceof Error ? error.message : String(error),
    userError: error instanceof KerasImportError,
    ...(error instanceof Error && error.stack ? { stack: error.stack } : {}),
  }),
);
