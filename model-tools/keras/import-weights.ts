/**
 * Keras HDF5 ResNet50 weights → the model store (TF.js layers format + manifest + model.onnx).
 *
 * HOW TO CALL IT FROM OTHER CODE: `importKerasWeightsInWorker(file, options)`. It has the same
 * signature and result as `importKerasWeights` but runs the import in a worker thread
 * (model-tools/task-worker.ts). Why: importing the 98 MiB ResNet50 file takes ≈ 8 s of CPU and
 * ≈ 1.5 GB at its peak (h5wasm, whose 4 MB of glue code alone costs ≈ 0.6 GB transiently to
 * load under tsx; the weights; tfjs' copy; the serialised store; the ONNX export's own worker).
 * In a worker the caller's event loop stays free (progress bars, health probes), most of that memory is
 * returned when the thread ends, and a damaged file that makes h5wasm abort its wasm module
 * takes only the worker down. `importKerasWeights` runs in the calling thread: use it only in a
 * thread that has not loaded tfjs with a backend other than 'cpu' (tfjs is a per-thread
 * singleton) and can afford the memory.
 *
 * Steps, reported to `onProgress(stage, done, total)` as:
 *   checking  the HDF5 signature and superblock (not HDF5? truncated?), MD5 and SHA-256 of the file
 *   reading   the file's layers (h5wasm), done/total = layers listed
 *   mapping   naming detected, every layer and shape checked, weights set, done/total = layers
 *   writing   the store's shards, done/total = bytes
 *   onnx      model.onnx exported inside the new store folder, 0/1 then 1/1
 * The store is written with writeModelStore: into a temp folder, ONNX included, swapped into
 * place at the very end. Any failure (a KerasImportError for problems with the file) leaves the
 * existing store exactly as it was.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { loadTfjs } from '../../lib/tfjs-runtime.ts';
import { spawnWorker } from '../../lib/spawn-worker.ts';
import { ARCHITECTURES, buildResNet, RESNET50_CLASSES } from '../../shared/model/resnet50.ts';
import type { ArchitectureName } from '../../shared/model/resnet50.ts';
import { ensureOnnxModel } from '../onnx-export.ts';
import { writeModelStore } from '../../model-store/store.ts';
import type { ModelManifest } from '../../model-store/store.ts';
import type { ModelTask, TaskWorkerMessage } from '../task-messages.ts';
import { KerasImportError } from './errors.ts';
import { fileDigests } from './file-digests.ts';
import { checkHdf5File } from './hdf5-header.ts';
import { legacyLayerNames } from './legacy-names.ts';
import { planWeights } from './map-weights.ts';
import { applyPlan, expectedLayers } from './model-weights.ts';

export { KerasImportError } from './errors.ts';

export type ImportStage = 'checking' | 'reading' | 'mapping' | 'writing' | 'onnx';

export interface ImportKerasOptions {
  /** The store folder to (re)place, e.g. DEFAULT_MODEL_DIR. */
  modelDir: string;
  /** Where the file came from, recorded in the manifest; an `md5` is also checked against the file. */
  source?: { url?: string; md5?: string };
  /** Default resnet50; tiny-resnet (same layer names, ≈0.1 M parameters) is for tests. */
  architecture?: ArchitectureName;
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** Imports in the calling thread; see the top of this file for when to prefer the worker. */
export async function importKerasWeights(file: string, options: ImportKerasOptions): Promise<ModelManifest> {
  const architecture = options.architecture ?? 'resnet50';
  const report = options.onProgress ?? (() => {});

  await assertReadableFile(file);
  report('checking', 0, 1);
  await checkHdf5File(file);
  const digests = await fileDigests(file);
  const expectedMd5 = options.source?.md5?.toLowerCase();
  if (expectedMd5 && expectedMd5 !== digests.md5) {
    throw new KerasImportError(`${file}: its MD5 is ${digests.md5}, expected ${expectedMd5} (a damaged download, or another file)`);
  }
  report('checking', 1, 1);

  // Loaded here, not at the top: a thread that only starts the worker never pays for h5wasm
  // (under tsx, loading its 4 MB of glue code costs ≈ 0.5 GB of transient memory).
  const { readKerasH5 } = await import('./read-keras-h5.ts');
  const weightsFile = await readKerasH5(file, (done, total) => report('reading', done, total));

  const tf = await loadTfjs('cpu'); // only holds and serialises weights: no compute, no wasm heap
  const model = buildResNet(tf, ARCHITECTURES[architecture], { kernelInitializer: 'zeros' });
  try {
    const plan = planWeights(weightsFile.layers, expectedLayers(model), legacyLayerNames(ARCHITECTURES[architecture]), {
      file,
      model: architecture,
    });
    weightsFile.layers.clear(); // the plan holds what is needed; let the rest go
    applyPlan(tf, model, plan, (done, total) => report('mapping', done, total));

    return await writeModelStore(
      model,
      options.modelDir,
      {
        formatVersion: 1,
        name: architecture,
        weights: 'imagenet',
        source: {
          kind: 'keras-h5',
          file: path.basename(file),
          ...(options.source?.url ? { url: options.source.url } : {}),
          md5: digests.md5,
          sha256: digests.sha256,
          naming: plan.naming,
          layout: weightsFile.layout,
        },
        createdAt: new Date().toISOString(),
        inputShape: [224, 224, 3],
        classes: RESNET50_CLASSES,
      },
      {
        onProgress: (done, total) => report('writing', done, total),
        // In the temp folder, so the new store arrives with its model.onnx: the hub never
        // sees new weights next to an ONNX file of old ones, nor has to export at start-up.
        beforeSwap: async (folder) => {
          report('onnx', 0, 1);
          await ensureOnnxModel(folder);
          report('onnx', 1, 1);
        },
      },
    );
  } finally {
    model.dispose();
  }
}

const TASK_WORKER = new URL('../task-worker.ts', import.meta.url);

/**
 * importKerasWeights in a worker thread: same options and result, progress relayed to
 * `onProgress`; problems with the file reject with a KerasImportError, as in the calling thread.
 */
export function importKerasWeightsInWorker(file: string, options: ImportKerasOptions): Promise<ModelManifest> {
  const task: ModelTask = {
    task: 'import',
    file, // worker threads share the process' cwd, so a relative path means the same there
    modelDir: options.modelDir,
    ...(options.source ? { source: options.source } : {}),
    ...(options.architecture ? { architecture: options.architecture } : {}),
  };
  return new Promise((resolve, reject) => {
    const worker = spawnWorker(TASK_WORKER, { workerData: task });
    let settled = false;
    const settle = (action: () => void): void => {
      if (settled) return;
      settled = true;
      action();
      // tfjs may keep the thread's event loop alive; its job is done either way.
      void worker.terminate();
    };
    worker.on('message', (message: TaskWorkerMessage) => {
      if (message.type === 'progress') options.onProgress?.(message.stage, message.done, message.total);
      else if (message.type === 'imported') settle(() => resolve(message.manifest));
      else if (message.type === 'failed') {
        settle(() => {
          if (message.userError) reject(new KerasImportError(message.message));
          else reject(Object.assign(new Error(`import of ${file} failed: ${message.message}`), { stack: message.stack }));
        });
      } else settle(() => reject(new Error(`unexpected answer from the import worker: ${message.type}`)));
    });
    // h5wasm aborts its module (and with it the thread) on some damaged files.
    worker.on('error', (error) => settle(() => reject(new Error(`import of ${file} failed: ${error.message}`, { cause: error }))));
    worker.on('exit', (code) => settle(() => reject(new Error(`the import worker for ${file} stopped (exit code ${code}) before it finished`))));
  });
}

async function assertReadableFile(file: string): Promise<void> {
  let info;
  try {
    info = await stat(file);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (error as Error).message;
    throw new KerasImportError(`${file}: ${why}`, { cause: error });
  }
  if (!info.isFile()) throw new KerasImportError(`${file} is not a file`);
}
