/**
 * Makes sure the model store exists before the hub starts: when it is missing, generates the
 * seeded untrained ResNet50 in a worker thread, with a progress bar, and says loudly what
 * that means.
 */
import { readManifest } from '../models/tools/store.ts';
import type { ModelManifest } from '../models/tools/store.ts';
import type { GenerateWorkerMessage } from '../models/tools/generate-worker.ts';
import { createProgressBar } from '../models/tools/progress.ts';
import type { Logger } from './log.ts';
import { UNTRAINED_WARNING } from './status.ts';
import { spawnWorker } from './threads/spawn-worker.ts';

export async function ensureModel(modelDir: string, log: Logger): Promise<ModelManifest> {
  const existing = await readManifest(modelDir);
  if (existing) {
    if (existing.weights === 'untrained') log.warn({ model_dir: modelDir }, UNTRAINED_WARNING);
    return existing;
  }
  log.warn({ model_dir: modelDir }, `no model found; generating a seeded, untrained ResNet50. ${UNTRAINED_WARNING}`);
  const manifest = await generateInWorker(modelDir, log);
  log.warn({ model_dir: modelDir, sha256: manifest.weightsSha256 }, 'untrained model generated');
  return manifest;
}

function generateInWorker(modelDir: string, log: Logger): Promise<ModelManifest> {
  const progress = createProgressBar('Generating untrained ResNet50');
  return new Promise((resolve, reject) => {
    const worker = spawnWorker(new URL('../models/tools/generate-worker.ts', import.meta.url), { workerData: { modelDir } });
    let lastStage = '';
    worker.on('message', (message: GenerateWorkerMessage) => {
      if (message.type === 'progress') {
        if (message.stage !== lastStage) log.info({ stage: message.stage }, 'generating model');
        lastStage = message.stage;
        progress.update(message.stage, message.done, message.total);
      } else if (message.type === 'done') {
        progress.stop();
        resolve(message.manifest);
      } else {
        progress.stop();
        reject(new Error(`model generation failed: ${message.message}`));
      }
    });
    worker.on('error', (error) => {
      progress.stop();
      reject(error);
    });
    worker.on('exit', (code) => {
      progress.stop();
      if (code !== 0) reject(new Error(`model generation stopped with exit code ${code}`));
    });
  });
}
