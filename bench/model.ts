/**
 * Which model store the bench uses, and making it ready for the engine before anything is
 * timed, so neither the ceiling nor the hub's start-up pays for an ONNX export.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { EngineName } from '../server/engines/engine.ts';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..');

/** The real store when there is one, else the generated test store (untrained, same cost). */
export function defaultModelDir(): string {
  const real = path.join(REPO_ROOT, 'models/resnet50');
  return existsSync(path.join(real, 'manifest.json')) ? 'models/resnet50' : 'models/test-resnet50';
}

interface OnnxExportModule {
  ensureOnnxModel(modelDir: string): Promise<unknown>;
}

/** For onnx, exports model.onnx when missing or stale; nothing to do for the other engines. */
export async function prepareModel(engine: EngineName, modelDir: string): Promise<void> {
  if (engine !== 'onnx') return;
  // A specifier in a variable: TypeScript must not resolve it at compile time, so the bench
  // type-checks and runs with the other engines while the exporter does not exist yet.
  const specifier = new URL('../models/tools/onnx-export.ts', import.meta.url).href;
  const module = (await import(specifier)) as OnnxExportModule;
  await module.ensureOnnxModel(modelDir);
}
