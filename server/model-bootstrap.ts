/**
 * Makes sure the model store is complete before the hub starts: when the model is missing,
 * generates the seeded untrained ResNet50 (with a progress bar, saying loudly what that
 * means); when the ONNX export is missing or stale, exports it. Both run in worker threads.
 */
import { ensureOnnxModel } from '../models/tools/onnx-export.ts';
import { readManifest } from '../models/tools/store.ts';
import type { ModelManifest } from '../models/tools/store.ts';
import type { ModelTask, TaskWorkerMessage } from '../models/tools/task-worker.ts';
import { createProgressBar } from '../models/tools/progress.ts';
import type { Logger } from './log.ts';
import { UNTRAINED_WARNING } from './status.ts';
import { spawnWorker } from './threads/spawn-worker.ts';

const TASK_WORKER = new URL('../models/tools/task-worker.ts', import.meta.url);

export async function ensureModel(modelDir: string, log: Logger): Promise<ModelManifest> {
  const existing = await readManifest(modelDir);
  if (existing) {
    if (existing.weights === 'untrained') log.warn({ model_dir: modelDir }, UNTRAINED_WARNING);
    return existing;
  }
  log.warn({ model_dir: modelDir }, `no model found; generating a seeded, untrained ResNet50. ${UNTRAINED_WARNING}`);
  const progress = createProgressBar('Generating untrained ResNet50');
  let lastStage = '';
  try {
    const done = await runTask({ task: 'generate', modelDir }, (message) => {
      if (message.type !== 'progress') return;
      if (message.stage !== lastStage) log.info({ stage: message.stage }, 'generating model');
      lastStage = message.stage;
      progress.update(message.stage, message.done, message.total);
    });
    if (done.type !== 'generated') throw new Error(`unexpected answer from the generator: ${done.type}`);
    log.warn({ model_dir: modelDir, sha256: done.manifest.weightsSha256 }, 'untrained model generated');
    return done.manifest;
  } finally {
    progress.stop();
  }
}

/** Exports model.onnx (in its own worker thread) when it is missing or was made from other weights. */
export async function ensureOnnx(modelDir: string, log: Logger): Promise<void> {
  const result = await ensureOnnxModel(modelDir);
  if (result.exported) log.info({ model_dir: modelDir, ms: Math.round(result.ms) }, 'exported model.onnx');
}

function runTask(task: ModelTask, onProgress: (message: TaskWorkerMessage) => void): Promise<TaskWorkerMessage> {
  return new Promise((resolve, reject) => {
    const worker = spawnWorker(TASK_WORKER, { workerData: task });
    worker.on('message', (message: TaskWorkerMessage) => {
      if (message.type === 'progress') onProgress(message);
      else {
        if (message.type === 'failed') reject(new Error(`${task.task} failed: ${message.message}`));
        else resolve(message);
        // tfjs may keep the thread's event loop alive; its job is done either way.
        void worker.terminate();
      }
    });
    worker.on('error', reject);
    worker.on('exit', (code) => reject(new Error(`${task.task} stopped (exit code ${code}) before it finished`)));
  });
}
