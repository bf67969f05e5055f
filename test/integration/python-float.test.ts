import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { formatProbability } from '../../shared/python-float.ts';
import { predsString, toPredictions, topK } from '../../shared/labels.ts';

/** Probabilities that stress every branch: ties, tiny values, exponents, ones and zeros. */
function sampleProbabilities(): number[] {
  const values = [0, 1, 0.5, 1e-5, 5e-6, 4.9999e-6, 1.5e-5, 0.015625, 0.123455, 0.1234550001, 9.99995e-5, 0.99999, 0.999995, 2.5e-6, 1e-4];
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 3000; i++) values.push(random() ** (1 + (i % 12)));
  // Exact binary ties, where Python rounds to even and toFixed does not.
  for (let k = 1; k < 64; k += 2) values.push(k / 64, k / 128, k / 2048);
  // Float32 values, as the engines produce them.
  return values.concat(values.slice(0, 500).map((v) => Math.fround(v)));
}

test("probabilities print exactly as Python's str(round(p, 5))", () => {
  const values = sampleProbabilities();
  const script = 'import json,sys\nfor v in json.load(sys.stdin): print(str(round(float(v), 5)))';
  const python = execFileSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify(values) }).toString().trim().split('\n');
  assert.equal(python.length, values.length);
  const mismatches = values.map((v, i) => [v, formatProbability(v), python[i]]).filter(([, ours, theirs]) => ours !== theirs);
  assert.deepEqual(mismatches, []);
});

test('the preds string is the top 3 as "label : prob", joined by ", "', () => {
  const probabilities = new Float32Array(1000);
  probabilities[207] = 0.5; // golden_retriever
  probabilities[208] = 0.25; // Labrador_retriever
  probabilities[1] = 0.00001; // goldfish
  const predictions = toPredictions(topK(probabilities, 3));
  assert.equal(predsString(predictions), 'golden_retriever : 0.5, Labrador_retriever : 0.25, goldfish : 1e-05');
  assert.deepEqual(predictions[0], { label: 'golden_retriever', wnid: 'n02099601', index: 207, probability: 0.5 });
});

test('topK orders by probability and keeps the lower index first on ties', () => {
  const top = topK([0.1, 0.3, 0.3, 0.05, 0.25], 4);
  assert.deepEqual(top.indices, [1, 2, 4, 0]);
});
