/**
 * The HTTP API of the real hub: probes, classify in its three body forms, status.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Reply } from '../../shared/protocol/classify.ts';
import { launchHub } from '../../kit/hub-process.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import { dealerRequest, expectError, expectSuccess, payloadOf, photo } from '../../kit/zmq-clients.ts';

let hub: HubProcess;

before(async () => {
  hub = await launchHub({ args: ['--max-image-bytes', String(512 * 1024)] });
});

after(async () => {
  await hub?.stop();
});

async function classify(body: Buffer | string | FormData, contentType: string | undefined, query = ''): Promise<{ status: number; reply: Reply }> {
  const response = await fetch(`${hub.http}/api/classify${query}`, {
    method: 'POST',
    body: Buffer.isBuffer(body) ? new Uint8Array(body) : body,
    headers: contentType ? { 'Content-Type': contentType } : {},
  });
  return { status: response.status, reply: (await response.json()) as Reply };
}

test('/healthz and /readyz say alive and ready', async () => {
  assert.equal((await fetch(`${hub.http}/healthz`)).status, 200);
  const ready = await fetch(`${hub.http}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { ready: true });
});

test('raw image, multipart and JSON bodies give the same answer as ZeroMQ', async () => {
  const image = photo('chelsea');
  const viaZmq = expectSuccess((await dealerRequest(hub.zmq, payloadOf(image))).reply);

  const raw = await classify(image, 'image/jpeg');
  assert.equal(raw.status, 200);
  assert.equal(expectSuccess(raw.reply).preds, viaZmq.preds);

  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(image)], { type: 'image/jpeg' }), 'chelsea.jpg');
  form.append('request_id', 'form-1');
  const multipart = await classify(form, undefined);
  assert.equal(multipart.status, 200);
  assert.equal(expectSuccess(multipart.reply).preds, viaZmq.preds);
  assert.equal(multipart.reply.request_id, 'form-1');

  const json = await classify(payloadOf(image, { top: 5 }), 'application/json');
  assert.equal(json.status, 200);
  assert.equal(expectSuccess(json.reply).predictions.length, 5);
  assert.equal(expectSuccess(json.reply).preds, viaZmq.preds);
});

test('bad bodies get the same error codes as over ZeroMQ, with HTTP statuses', async () => {
  const text = await classify(Buffer.from('just text'), 'image/jpeg');
  assert.equal(text.status, 415);
  assert.equal(expectError(text.reply).error.code, 'unsupported_image');

  const big = await classify(Buffer.alloc(600 * 1024, 1), 'image/png');
  assert.equal(big.status, 413);
  assert.equal(expectError(big.reply).error.code, 'payload_too_large');

  const badJson = await classify('{"payload": ', 'application/json');
  assert.equal(badJson.status, 400);
  assert.equal(expectError(badJson.reply).error.code, 'invalid_json');

  const badTop = await classify(photo('coffee'), 'image/jpeg', '?top=99');
  assert.equal(badTop.status, 400);
  assert.equal(expectError(badTop.reply).error.code, 'invalid_top');

  const after = await classify(photo('coffee'), 'image/jpeg');
  assert.equal(after.status, 200);
});

test('/api/status shows the model, the workers and counts by outcome', async () => {
  const status = (await (await fetch(`${hub.http}/api/status`)).json()) as {
    ready: boolean;
    model: { weights: string; warning?: string };
    executors: Array<{ id: string; engine: string; state: string; images: number }>;
    engine: { chosen: string; trials: Array<{ engine: string; available: boolean; warmup_ms?: number }> };
    queue: { depth: number };
    requests: Record<string, number>;
  };
  assert.equal(status.ready, true);
  assert.equal(status.model.weights, 'untrained');
  assert.match(status.model.warning ?? '', /UNTRAINED/);
  assert.equal(status.executors.length, 2);
  assert.ok(status.engine.trials.some((trial) => trial.engine === status.engine.chosen && trial.available));
  for (const worker of status.executors) {
    assert.equal(worker.engine, status.engine.chosen);
    assert.equal(worker.state, 'ready');
  }
  assert.ok(status.executors.reduce((sum, worker) => sum + worker.images, 0) >= 5);
  assert.ok((status.requests.ok ?? 0) >= 5);
  assert.ok((status.requests.unsupported_image ?? 0) >= 1);
  assert.equal(status.queue.depth, 0);
});

test('--engine auto tried every engine and chose the fastest measured warm-up', async () => {
  const status = (await (await fetch(`${hub.http}/api/status`)).json()) as {
    engine: { chosen: string; trials: Array<{ engine: string; available: boolean; warmup_ms?: number; error?: string }> };
  };
  const tried = status.engine.trials.map((trial) => trial.engine).sort();
  assert.deepEqual(tried, ['onnx', 'tfjs-node', 'wasm']);
  const available = status.engine.trials.filter((trial) => trial.available);
  assert.ok(available.length >= 2, JSON.stringify(status.engine.trials));
  const fastest = available.reduce((a, b) => (b.warmup_ms! < a.warmup_ms! ? b : a));
  assert.equal(status.engine.chosen, fastest.engine);
  for (const trial of status.engine.trials.filter((t) => !t.available)) assert.ok(trial.error, `${trial.engine} says why it is unavailable`);
});
