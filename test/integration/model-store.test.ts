/**
 * The model store's writes: a reader never sees half a store, whether the writer is interrupted
 * or another process writes at the same time.
 * Run: node --import tsx --test test/integration/model-store.test.ts
 */
import { REPO_ROOT } from '../../kit/paths.ts';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { loadTfjs } from '../../lib/tfjs-runtime.ts';
import { loadLayersModelFromStore, readManifest, writeModelStore, type ManifestInput } from '../../model-store/store.ts';

type Tf = typeof import('@tensorflow/tfjs');

const repoRoot = REPO_ROOT;

let tf: Tf;
before(async () => {
  tf = await loadTfjs('wasm');
});

async function tempDir(label: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `resnet-hub-${label}-`));
}

describe('store writes are atomic', () => {
  let parent: string;
  let dir: string;
  // A small model whose weights (1100×1000 + 1000 floats ≈ 4.2 MiB) span two shards.
  const tinyModel = (value: number, biasValue = value) => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1000, inputShape: [1100], kernelInitializer: 'zeros' })] });
    const weights = [tf.fill([1100, 1000], value), tf.fill([1000], biasValue)];
    model.setWeights(weights);
    tf.dispose(weights);
    return model;
  };
  const manifestInput = (seed: number): ManifestInput => ({
    formatVersion: 1,
    name: 'resnet50',
    weights: 'untrained',
    source: { kind: 'generated', seed, generator: 'test' },
    createdAt: new Date().toISOString(),
    inputShape: [224, 224, 3],
    classes: 1000,
  });
  const siblings = async () => (await readdir(parent)).sort();

  before(async () => {
    parent = await tempDir('atomic');
    dir = path.join(parent, 'store');
  });
  after(async () => {
    await rm(parent, { recursive: true, force: true });
  });

  test('a failed write leaves the previous store intact and no temp folder', async () => {
    const good = tinyModel(1);
    const goodManifest = await writeModelStore(good, dir, manifestInput(1));
    good.dispose();
    assert.deepEqual(await siblings(), ['store']);

    // NaN in the bias: the last shard, so the first shard is already written when it fails.
    const bad = tinyModel(2, Number.NaN);
    let progressed = 0;
    await assert.rejects(writeModelStore(bad, dir, manifestInput(2), { onProgress: () => progressed++ }), /non-finite/);
    bad.dispose();
    assert.equal(progressed, 1, 'failed after writing the first shard');

    assert.deepEqual(await siblings(), ['store']);
    assert.deepEqual(await readManifest(dir), goodManifest);
    const loaded = await loadLayersModelFromStore(tf, dir);
    assert.equal(loaded.getWeights()[1].dataSync()[0], 1);
    loaded.dispose();
  });

  test('a process killed mid-write leaves the previous store intact; the next write replaces it', async () => {
    const before = await readManifest(dir);
    assert.ok(before);
    // The child writes a store and blocks forever after its first shard; we then SIGKILL it.
    const code = `
      import { writeSync } from 'node:fs';
      import { loadTfjs } from ${JSON.stringify(pathToFileURL(path.join(repoRoot, 'lib/tfjs-runtime.ts')).href)};
      import { writeModelStore } from ${JSON.stringify(pathToFileURL(path.join(repoRoot, 'model-store/store.ts')).href)};
      const tf = await loadTfjs('cpu');
      const model = tf.sequential({ layers: [tf.layers.dense({ units: 1000, inputShape: [1100], kernelInitializer: 'ones' })] });
      const blocker = new Int32Array(new SharedArrayBuffer(4));
      await writeModelStore(model, process.env.STORE_DIR, ${JSON.stringify(manifestInput(3))}, {
        onProgress: () => { writeSync(1, 'shard written\\n'); Atomics.wait(blocker, 0, 0, 120000); },
      });`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: repoRoot,
      env: { ...process.env, STORE_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('shard written') && resolve());
      child.on('exit', () => reject(new Error(`child exited before writing a shard: ${stderr}`)));
    });
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');

    const leftovers = (await siblings()).filter((n) => n !== 'store');
    assert.equal(leftovers.length, 1, 'the killed write left its temp folder');
    assert.deepEqual(await readdir(path.join(parent, leftovers[0])), ['group1-shard1of2.bin'], 'killed mid-write');
    assert.deepEqual(await readManifest(dir), before);
    const loaded = await loadLayersModelFromStore(tf, dir);
    assert.equal(loaded.getWeights()[0].dataSync()[0], 1);
    loaded.dispose();

    const next = tinyModel(4);
    const written = await writeModelStore(next, dir, manifestInput(4));
    next.dispose();
    assert.deepEqual(await readManifest(dir), written);
    assert.notEqual(written.weightsSha256, before.weightsSha256);
  });
});
