/**
 * What the model task worker (task-worker.ts) is asked to do and what it answers: the one
 * contract between the thread that starts a task and the thread that runs it.
 */
import type { ArchitectureName } from '../shared/model/resnet50.ts';
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
