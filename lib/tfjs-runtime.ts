/**
 * Loads TensorFlow.js in Node with the requested backend:
 *  - 'wasm': @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD). Its .wasm binaries are read from the
 *    installed package on disk, never fetched. In Node it runs single-threaded (tfjs disables
 *    wasm threads under Node), so parallelism comes from running several worker_threads.
 *  - 'tfjs-node': the native libtensorflow binding, an optional dependency that may be absent.
 *  - 'cpu': the pure-JS reference backend (slow; tests and fallback).
 * Works in the main thread and inside node:worker_threads (each thread gets its own tfjs).
 */
import { createRequire } from 'node:module';
import path from 'node:path';

type Tf = typeof import('@tensorflow/tfjs');

export type TfjsBackend = 'tfjs-node' | 'wasm' | 'cpu';

/** The requested backend cannot run on this machine (package absent, native library broken). */
export class EngineUnavailableError extends Error {
  constructor(
    readonly backend: TfjsBackend,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EngineUnavailableError';
  }
}

const require = createRequire(import.meta.url);

/** Folder holding tfjs-backend-wasm's .wasm files, as a path with a trailing separator. */
export function wasmBinariesDir(): string {
  // The package's "main" is dist/tf-backend-wasm.node.js, next to the .wasm binaries.
  return path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep;
}

let loading: Promise<Tf> | undefined;
let loadedBackend: TfjsBackend | undefined;

/**
 * Imports tfjs, activates `backend` and waits until it is ready. tfjs is a per-thread singleton,
 * so a thread can only use one backend through this function; asking for another throws.
 */
export function loadTfjs(backend: TfjsBackend): Promise<Tf> {
  if (loading) {
    if (loadedBackend !== backend) {
      return Promise.reject(new Error(`tfjs already loaded with backend '${loadedBackend}' in this thread; cannot switch to '${backend}'`));
    }
    return loading;
  }
  loadedBackend = backend;
  loading = load(backend);
  // A failed load may be retried (e.g. after installing a package); don't cache the rejection.
  loading.catch(() => {
    loading = undefined;
    loadedBackend = undefined;
  });
  return loading;
}

async function load(backend: TfjsBackend): Promise<Tf> {
  switch (backend) {
    case 'wasm': {
      const tf = await import('@tensorflow/tfjs');
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      // Importing the package registers the 'wasm' backend; point it at the files on disk.
      // Emscripten under Node reads them with fs, so a plain path prefix is what it wants.
      wasm.setWasmPaths(wasmBinariesDir());
      await withoutEmscriptenProcessHandlers(() => activate(tf, 'wasm'));
      return tf;
    }
    case 'cpu': {
      const tf = await import('@tensorflow/tfjs');
      await activate(tf, 'cpu');
      // The CPU backend prints a "use tfjs-node" banner on its first tensor; use it once, quietly.
      quietly(tf, () => tf.tensor1d([0]).dispose());
      return tf;
    }
    case 'tfjs-node': {
      // Keep the specifier in a variable: the package is optional, so TypeScript must not try
      // to resolve its types, and bundlers must not try to include it.
      const specifier = '@tensorflow/tfjs-node';
      let tf: Tf;
      try {
        // tfjs-node (CommonJS) re-exports the whole tfjs API plus node-only extras; take its
        // module.exports (`default`) rather than rely on named-export detection for CJS.
        const mod = (await import(specifier)) as { default?: Tf };
        tf = mod.default ?? (mod as Tf);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        // "Cannot find package '@tensorflow/tfjs-node'": absent. Anything else (e.g. its native
        // binding missing because the install script failed) is a broken install.
        const absent = (error as { code?: unknown } | null)?.code === 'ERR_MODULE_NOT_FOUND' && message.includes(`'${specifier}'`);
        const hint = absent
          ? 'it is not installed (it is an optional dependency whose install downloads libtensorflow; run `npm install @tensorflow/tfjs-node` with internet access)'
          : `it failed to load (${message}); reinstalling it with internet access may help`;
        throw new EngineUnavailableError('tfjs-node', `backend 'tfjs-node' unavailable: ${hint}. Use the 'wasm' backend instead.`, {
          cause: error,
        });
      }
      await activate(tf, 'tensorflow');
      return tf;
    }
    default: {
      const never: never = backend;
      throw new Error(`unknown tfjs backend '${String(never)}'`);
    }
  }
}

async function activate(tf: Tf, name: string): Promise<void> {
  // setBackend resolves to false (rather than throwing) when initialisation fails.
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (!ok || tf.getBackend() !== name) {
    throw new EngineUnavailableError(
      name === 'tensorflow' ? 'tfjs-node' : (name as TfjsBackend),
      `tfjs backend '${name}' failed to initialise (active backend: ${tf.getBackend()})`,
    );
  }
}

/** Runs `fn` with tfjs warnings (backend_util.warn) suppressed, restoring the PROD flag after. */
function quietly(tf: Tf, fn: () => void): void {
  const env = tf.env();
  const wasProd = env.getBool('PROD');
  env.set('PROD', true);
  try {
    fn();
  } finally {
    env.set('PROD', wasProd);
  }
}


/**
 * The wasm glue (Emscripten) installs process 'uncaughtException'/'unhandledRejection' handlers
 * that merely rethrow, so that any later crash anywhere in the process is reported from inside
 * the minified glue, printing a multi-kilobyte line of its source. Removing them restores Node's
 * default behaviour (which also exits on both), with readable stack traces.
 */
async function withoutEmscriptenProcessHandlers(fn: () => Promise<void>): Promise<void> {
  const exceptionHandlers = new Set(process.listeners('uncaughtException'));
  const rejectionHandlers = new Set(process.listeners('unhandledRejection'));
  try {
    await fn();
  } finally {
    for (const listener of process.listeners('uncaughtException')) {
      if (!exceptionHandlers.has(listener)) process.removeListener('uncaughtException', listener);
    }
    for (const listener of process.listeners('unhandledRejection')) {
      if (!rejectionHandlers.has(listener)) process.removeListener('unhandledRejection', listener);
    }
  }
}
