/**
 * A local executor hands its worker thread each batch through a buffer the two share. These
 * run a real inference worker (onnx engine, the test model) and check that a batch is never
 * overwritten by the next one, whichever way that one travels.
 *
 * Run: node --import tsx --test test/integration/local-executor.test.ts
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LocalExecutor } from '../../server/executors/local-executor.ts';
import type { BatchResult } from '../../server/executors/executor.ts';
import { ensureOnnxModel } from '../../model-tools/onnx-export.ts';
import { generateSyntheticImages } from '../../model-tools/synthetic-images.ts';
import { INPUT_VALUES_PER_IMAGE } from '../../shared/caffe.ts';
import { TEST_MODEL_DIR } from '../../kit/paths.ts';
import { readManifest } from '../../model-store/store.ts';

const MAX_BATCH = 4;
const images = (seed: number, count: number): Uint8Array[] => {
  const all = generateSyntheticImages(seed, count);
  return Array.from({ length: count }, (_, i) => all.slice(i * INPUT_VALUES_PER_IMAGE, (i + 1) * INPUT_VALUES_PER_IMAGE));
};
const first = images(11, 3);
const second = images(12, 4);

let executor: LocalExecutor;

before(async () => {
  await ensureOnnxModel(TEST_MODEL_DIR);
  executor = new LocalExecutor({
    id: 'test-local-1',
    engine: 'onnx',
    threads: 1,
    spin: false,
    modelDir: TEST_MODEL_DIR,
    modelSha256: 'test',
    maxBatch: MAX_BATCH,
    topK: 5,
  });
  await executor.whenReady();
});

test('the executor names the weights its worker loaded, not the ones it was started for', async () => {
  const manifest = await readManifest(TEST_MODEL_DIR);
  assert.ok(manifest);
  assert.equal(executor.modelSha256, manifest.weightsSha256, "started for 'test', it serves what the store held");
});

after(async () => {
  await executor?.stop();
});

function assertSameResults(actual: BatchResult, expected: BatchResult, what: string): void {
  assert.equal(actual.results.length, expected.results.length, what);
  actual.results.forEach((top, i) => {
    assert.deepEqual(top.indices, expected.results[i].indices, `${what}: image ${i}'s classes`);
    top.probabilities.forEach((p, k) => assert.ok(Math.abs(p - expected.results[i].probabilities[k]) < 1e-6, `${what}: image ${i}, #${k + 1}: ${p}`));
  });
}

test('batches run one after another give each image its own answer', async () => {
  const a = await executor.run(first);
  const b = await executor.run(second);
  assert.equal(a.results.length, 3);
  assert.equal(b.results.length, 4);
  // Distinct images: a worker that read a stale buffer would repeat the first batch's answers.
  assert.notDeepEqual(a.results[0].probabilities, b.results[0].probabilities);
});

test('a batch sent while another runs does not overwrite it', async () => {
  const alone = [await executor.run(first), await executor.run(second), await executor.run(images(13, MAX_BATCH + 2))];
  // The second and third are handed over while the first is still running.
  const together = await Promise.all([executor.run(first), executor.run(second), executor.run(images(13, MAX_BATCH + 2))]);
  together.forEach((result, i) => assertSameResults(result, alone[i], `batch ${i + 1} of 3 in flight`));
  assert.equal(executor.busy, false);
});
