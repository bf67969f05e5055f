/**
 * Loads one engine by name. Choosing between them (`--engine auto`) is done by measurement,
 * elsewhere; this only knows how to construct each.
 */
import type { Engine, EngineName, EngineOptions } from './engine.ts';
import { createOnnxEngine } from './onnx-engine.ts';
import { createTfjsEngine } from './tfjs-engine.ts';

export function loadEngine(name: EngineName, options: EngineOptions): Promise<Engine> {
  return name === 'onnx' ? createOnnxEngine(options) : createTfjsEngine(name, options);
}
