/**
 * lib/tfjs-runtime.ts: which backend loads where, and what it says when one cannot.
 * Run: node --import tsx --test test/integration/tfjs-runtime.test.ts
 */
import { REPO_ROOT } from '../../kit/paths.ts';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EngineUnavailableError } from '../../lib/tfjs-runtime.ts';

const repoRoot = REPO_ROOT;

describe('tfjs runtime', () => {
  test('tfjs-node: a clear EngineUnavailableError when the optional package is absent', async (t) => {
    try {
      createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
      t.skip('@tensorflow/tfjs-node is installed here');
      return;
    } catch {
      // absent: expected on this machine
    }
    // In a worker: this thread already runs the wasm backend, and tfjs is one per thread.
    const result = await runInWorker(`
      const { loadTfjs } = await import(runtimeUrl);
      try { await loadTfjs('tfjs-node'); return { ok: true }; }
      catch (e) { return { ok: false, name: e.name, message: e.message }; }`);
    assert.equal(result.ok, false);
    assert.equal(result.name, 'EngineUnavailableError');
    assert.match(String(result.message), /tfjs-node.*not installed/);
    assert.equal(new EngineUnavailableError('tfjs-node', 'x').name, 'EngineUnavailableError');
  });

  test('wasm and cpu backends work inside worker threads, without the tfjs-node banner', async () => {
    // Control: plain tfjs on the CPU backend does print the banner, and we do capture it.
    const control = await runInWorker(`
      const tf = await import('@tensorflow/tfjs');
      await tf.setBackend('cpu');
      tf.tensor1d([1]);
      return {};`);
    assert.match(control.stderr, /looks like you are running TensorFlow\.js in Node/);

    for (const backend of ['wasm', 'cpu']) {
      const result = await runInWorker(`
        const { loadTfjs } = await import(runtimeUrl);
        const tf = await loadTfjs(${JSON.stringify(backend)});
        const y = tf.conv2d(tf.ones([1, 8, 8, 3]), tf.ones([3, 3, 3, 2]), 1, 'same');
        return { backend: tf.getBackend(), centre: (await y.data())[(4 * 8 + 4) * 2] };`);
      assert.equal(result.backend, backend);
      assert.equal(result.centre, 27);
      assert.doesNotMatch(result.stderr, /looks like you are running TensorFlow\.js in Node/);
    }
  });
});

/**
 * Runs an async function body in a fresh worker thread (with tsx registered so it can import
 * the repo's .ts files; `runtimeUrl` is in scope) and returns its result plus the worker's stderr.
 */
async function runInWorker(body: string): Promise<Record<string, unknown> & { stderr: string }> {
  const runtimeUrl = pathToFileURL(path.join(repoRoot, 'lib/tfjs-runtime.ts')).href;
  const script = `
    const { parentPort } = require('node:worker_threads');
    const runtimeUrl = ${JSON.stringify(runtimeUrl)};
    (async () => {
      const { register } = await import('tsx/esm/api');
      register();
      ${body}
    })().then((r) => parentPort.postMessage(r), (e) => parentPort.postMessage({ crashed: String(e && e.stack || e) }));`;
  const worker = new Worker(script, { eval: true, stderr: true });
  let stderr = '';
  worker.stderr.on('data', (d) => (stderr += d));
  try {
    const result = await new Promise<Record<string, unknown>>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    assert.equal(result.crashed, undefined, String(result.crashed));
    return { ...result, stderr };
  } finally {
    await worker.terminate();
  }
}
