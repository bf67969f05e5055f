/**
 * Makes sure the model store is complete before the hub starts: when the model is missing,
 * first tries to fetch the official ImageNet weights (a short connect timeout, so a machine
 * without network finds out in seconds), and when that fails generates the seeded untrained
 * ResNet50 (with a progress bar, saying loudly what that means and why); when the ONNX
 * export is missing or stale, exports it; with --precision int8, the same for the int8 model.
 * An existing store is used as it is: no network.
 */
import { ensureOnnxModel } from '../model-tools/onnx-export.ts';
import { ensureInt8Model } from '../model-tools/onnx/quantize/int8-model.ts';
import { summarizeReport } from '../model-tools/onnx/quantize/format-report.ts';
import { readManifest } from '../model-store/store.ts';
import type { ModelManifest } from '../model-store/store.ts';
import type { ModelTask, TaskWorkerMessage } from '../model-tools/task-messages.ts';
import { createProgressBar } from '../lib/progress.ts';
import { isDownloadError } from '../model-tools/fetch/download-error.ts';
import { createFetchProgress } from '../model-tools/fetch/fetch-progress.ts';
import { fetchImagenetWeights } from '../model-tools/fetch/keras-weights.ts';
import { KERAS_RESNET50_URL } from '../model-store/official-weights.ts';
import type { Logger } from '../lib/log.ts';
import { UNTRAINED_WARNING } from './observability/status.ts';
import { spawnWorker } from '../lib/spawn-worker.ts';
import type { Config } from './config.ts';
import type { EngineName } from './engines/engine.ts';
import { AUTO_CANDIDATES } from './executors/local-pool.ts';

const TASK_WORKER = new URL('../model-tools/task-worker.ts', import.meta.url);

/** npm start's connect timeout: long enough for a slow network, short enough that offline start-up is not held up. */
export const START_FETCH_CONNECT_TIMEOUT_MS = 3000;

export interface ModelFetchSettings {
  /** Try the ImageNet weights before generating an untrained model. */
  enabled: boolean;
  url?: string;
  md5?: string;
  connectTimeoutMs?: number;
  /** Where the downloaded .h5 is kept. Default models/cache/. */
  cacheDir?: string;
  retries?: number;
  retryBaseMs?: number;
}

export interface EnsureModelOptions {
  /** Default: no fetch, generate at once. */
  fetch?: ModelFetchSettings;
}

export async function ensureModel(modelDir: string, log: Logger, options: EnsureModelOptions = {}): Promise<ModelManifest> {
  const existing = await readManifest(modelDir);
  if (existing) {
    if (existing.weights === 'untrained') log.warn({ model_dir: modelDir }, UNTRAINED_WARNING);
    return existing;
  }
  if (options.fetch?.enabled) {
    const fetched = await fetchImagenetOrExplain(modelDir, log, options.fetch);
    if (fetched) return fetched;
  }
  return generateUntrained(modelDir, log);
}

/**
 * Fetches and imports the ImageNet weights into `modelDir`; on any failure logs one warning
 * saying that the hub falls back to the untrained model, and why, and returns null.
 */
export async function fetchImagenetOrExplain(modelDir: string, log: Logger, settings: ModelFetchSettings): Promise<ModelManifest | null> {
  const url = settings.url ?? KERAS_RESNET50_URL;
  log.info({ model_dir: modelDir, url }, 'no model found; fetching the ImageNet ResNet50 weights');
  const fetchLog = log.child({ component: 'model-fetch' });
  const progress = createFetchProgress('Fetching ImageNet ResNet50', {
    // The bar is for a person at a terminal; the JSON log gets each stage, and the download every 10%.
    onMilestone: (stage, done, total, text) => fetchLog.info({ stage, done, total }, text),
  });
  try {
    const { manifest } = await fetchImagenetWeights({
      modelDir,
      url,
      md5: settings.md5,
      cacheDir: settings.cacheDir,
      connectTimeoutMs: settings.connectTimeoutMs ?? START_FETCH_CONNECT_TIMEOUT_MS,
      retries: settings.retries,
      retryBaseMs: settings.retryBaseMs,
      onProgress: progress.onProgress,
      log: fetchLog,
    });
    progress.stop();
    log.info({ model_dir: modelDir, weights: manifest.weights, sha256: manifest.weightsSha256 }, 'ImageNet weights imported');
    return manifest;
  } catch (error) {
    progress.stop();
    const reason = isDownloadError(error) ? error.kind : 'error';
    const why = isDownloadError(error, 'offline') ? 'offline' : `${reason}: ${(error as Error).message ?? String(error)}`;
    log.warn(
      { model_dir: modelDir, url, reason, error: error instanceof Error ? error.message : String(error) },
      `could not fetch the ImageNet weights (${why}); falling back to the untrained model. ` +
        'Run `npm run model:fetch` once online to install the real weights.',
    );
    return null;
  }
}

async function generateUntrained(modelDir: string, log: Logger): Promise<ModelManifest> {
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

/**
 * Makes model.int8.onnx current (quantizing it in a worker thread, with a progress bar, when it
 * is missing or was made from other weights or settings) and logs its fidelity.
 */
export async function ensureInt8(modelDir: string, log: Logger): Promise<void> {
  const progress = createProgressBar('Quantizing to int8');
  let lastStage = '';
  try {
    const result = await ensureInt8Model(modelDir, {
      onProgress: (stage, done, total) => {
        if (stage !== lastStage) log.info({ stage }, 'int8 model: quantizing');
        lastStage = stage;
        progress.update(stage, done, total);
      },
    });
    progress.stop();
    const fields = { model_dir: modelDir, ...(result.reason ? { reason: result.reason } : {}), ms: Math.round(result.ms) };
    log.info(fields, `${result.quantized ? 'quantized' : 'using'} model.int8.onnx: ${summarizeReport(result.report)}`);
  } finally {
    progress.stop();
  }
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

/**
 * What the engines need of the store before the hub starts: model.onnx for the onnx engine (and
 * model.int8.onnx with --precision int8). Returns the engines `--engine auto` may try: with
 * int8 only onnx (config.ts refuses another explicit engine, and a failure is fatal); with fp32
 * a failed export just rules onnx out. Undefined: every engine.
 */
export async function prepareEngineFiles(config: Config, log: Logger, weightsSha256: string): Promise<EngineName[] | undefined> {
  if ((config.engine !== 'onnx' && config.engine !== 'auto') || config.workers === 0) return undefined;
  if (config.precision === 'int8') {
    await ensureInt8(config.modelDir, log);
    if (config.engine === 'auto') log.info({ precision: 'int8' }, '--engine auto with --precision int8: only the onnx engine runs int8, so it is the only candidate');
    return ['onnx'];
  }
  try {
    await ensureOnnx(config.modelDir, log);
    return undefined;
  } catch (error) {
    if (config.engine === 'onnx') throw error;
    log.warn({ err: error, weights_sha256: weightsSha256 }, 'ONNX export failed; the onnx engine is left out');
    return AUTO_CANDIDATES.filter((engine) => engine !== 'onnx');
  }
}

/** A model swap's new store needs what the engine in use needs; the export may not fail now. */
export async function prepareSwapFiles(config: Config, log: Logger, engine: EngineName | undefined): Promise<void> {
  if (engine !== 'onnx') return;
  // Does the ONNX export too; int8 also keeps fp32 for checking volunteers.
  if (config.precision === 'int8') await ensureInt8(config.modelDir, log);
  else await ensureOnnx(config.modelDir, log);
}
