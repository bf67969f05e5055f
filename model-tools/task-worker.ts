/**
 * Worker-thread entry for the model tasks that take a lot of memory and CPU (generating the
 * untrained model, importing Keras weights), so the calling thread stays free to show progress
 * and answer health probes, and the memory tfjs and h5wasm take is returned when the thread ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { generateUntrainedModel } from './generate.ts';
import { importKerasWeights, KerasImportError } from './keras/import-weights.ts';
import type { ModelTask, TaskWorkerMessage } from './task-messages.ts';

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
