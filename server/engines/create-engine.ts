/**
 * Picks and loads the engine a worker runs: the one asked for, or for `auto` the first of
 * the candidates that loads on this machine.
 */
import type { EngineChoice } from '../config.ts';
import type { Engine, EngineName } from './engine.ts';
import { createTfjsEngine } from './tfjs-engine.ts';

/** Fastest first, as measured on machines where each one loads. */
const AUTO_ORDER: readonly EngineName[] = ['tfjs-node', 'wasm'];

export async function createEngine(choice: EngineChoice, modelDir: string): Promise<Engine> {
  if (choice !== 'auto') return createTfjsEngine(choice, modelDir);
  const failures: string[] = [];
  for (const name of AUTO_ORDER) {
    try {
      return await createTfjsEngine(name, modelDir);
    } catch (error) {
      failures.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  throw new Error(`no engine could be loaded (${failures.join('; ')})`);
}
