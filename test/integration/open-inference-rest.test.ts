/**
 * The Open Inference Protocol (KServe v2) over REST against a real hub (the tiny model, real
 * worker threads): health, metadata, inference with JSON and with Triton's binary tensors, the
 * classification extension, errors as the specification gives them, and careless clients.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ClassifyReply } from '../../shared/protocol/classify.ts';
import { launchHub } from '../../kit/hub-process.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import { photo } from '../../kit/zmq-clients.ts';
import { preprocessImage } from '../../server/preprocess/preprocess-image.ts';
import { toCaffeInput } from '../../shared/caffe.ts';

const images = [photo('chelsea'), photo('coffee')];
const MODEL = '/v2/models/resnet50';

let hub: HubProcess;
let sha256: string;
before(async () => {
  hub = await launchHub({ args: ['--workers', '1'] });
  sha256 = ((await (await fetch(`${hub.http}/api/status`)).json()) as { model: { sha256: string } }).model.sha256;
});
after(async () => {
  await hub?.stop();
});

async function classify(image: Buffer): Promise<ClassifyReply> {
  const response = await fetch(`${hub.http}/api/classify?top=3`, { method: 'POST', headers: { 'Content-Type': 'image/jpeg' }, body: new Uint8Array(image) });
  return (await response.json()) as ClassifyReply;
}

async function infer(body: unknown, path = `${MODEL}/infer`): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${hub.http}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** An image as the model's own input: the hub's preprocessing (same code, same pixels), then caffe. */
async function modelInputOf(image: Buffer): Promise<Float32Array> {
  return toCaffeInput((await preprocessImage(image, { maxPixels: 40_000_000 })).rgb, 1);
}

function imageInput(list: Buffer[]) {
  return { name: 'image', datatype: 'BYTES', shape: [list.length], data: list.map((image) => image.toString('base64')) };
}

/** What the hub's own API answers, written as the classification extension writes it. */
async function expectedEntries(list: Buffer[]): Promise<Array<[number, string]>> {
  const replies = await Promise.all(list.map(classify));
  return replies.flatMap((reply) => reply.predictions.map((p) => [p.index, p.label] as [number, string]));
}

function entries(data: unknown): Array<[number, string]> {
  return (data as string[]).map((entry) => {
    const [probability, index, ...label] = entry.split(':');
    assert.ok(Number(probability) >= 0 && Number(probability) <= 1, entry);
    return [Number(index), label.join(':')];
  });
}

describe('health and metadata', () => {
  test('live, ready, server metadata with the extensions, model metadata and readiness', async () => {
    assert.deepEqual(await (await fetch(`${hub.http}/v2/health/live`)).json(), { live: true });
    const ready = await fetch(`${hub.http}/v2/health/ready`);
    assert.equal(ready.status, 200);
    const server = (await (await fetch(`${hub.http}/v2`)).json()) as { name: string; version: string; extensions: string[] };
    assert.equal(server.name, 'resnet-hub');
    assert.match(server.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(server.extensions.sort(), ['binary_tensor_data', 'classification']);
    const metadata = (await (await fetch(`${hub.http}${MODEL}`)).json()) as Record<string, unknown>;
    assert.deepEqual(metadata, {
      name: 'resnet50',
      versions: [sha256],
      platform: 'onnx_onnxv1',
      inputs: [
        { name: 'image', datatype: 'BYTES', shape: [-1] },
        { name: 'input', datatype: 'FP32', shape: [-1, 224, 224, 3] },
      ],
      outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 1000] }],
    });
    assert.deepEqual(await (await fetch(`${hub.http}${MODEL}/versions/${sha256}/ready`)).json(), { name: 'resnet50', ready: true });
    assert.equal((await fetch(`${hub.http}${MODEL}/versions/${sha256.slice(0, 12)}`)).status, 200, 'a version by its first 12 hex digits');
  });

  test('an unknown model or version is 404 with {"error"}', async () => {
    for (const path of ['/v2/models/resnet18', `${MODEL}/versions/${'0'.repeat(64)}`, `${MODEL}/versions/1/infer`, '/v2/models']) {
      const response = await fetch(`${hub.http}${path}`);
      assert.equal(response.status, 404, path);
      assert.equal(typeof ((await response.json()) as { error: unknown }).error, 'string', path);
    }
  });
});

describe('inference', () => {
  test('JSON: two images in one request, the classification extension, the weights as the version, the id echoed', async () => {
    const { status, json } = await infer({ id: 'two-cats', inputs: [imageInput(images)], outputs: [{ name: 'probabilities', parameters: { classification: 3 } }] });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.model_name, 'resnet50');
    assert.equal(json.model_version, sha256);
    assert.equal(json.id, 'two-cats');
    const [output] = json.outputs as Array<{ name: string; datatype: string; shape: number[]; data: unknown }>;
    assert.equal(output.name, 'probabilities');
    assert.equal(output.datatype, 'BYTES');
    assert.deepEqual(output.shape, [2, 3]);
    assert.deepEqual(entries(output.data), await expectedEntries(images), 'the same classes, in the same order, as the hub’s own API gives');
  });

  test('binary: images as length-prefixed BYTES after the JSON header, the output back as binary', async () => {
    const section = Buffer.concat(images.flatMap((image) => [Buffer.from(Uint32Array.of(image.length).buffer), image]));
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'image', datatype: 'BYTES', shape: [2], parameters: { binary_data_size: section.length } }],
        outputs: [{ name: 'probabilities', parameters: { classification: 3, binary_data: true } }],
      }),
    );
    const response = await fetch(`${hub.http}${MODEL}/infer`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(header.length) },
      body: new Uint8Array(Buffer.concat([header, section])),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/octet-stream');
    const body = Buffer.from(await response.arrayBuffer());
    const jsonLength = Number(response.headers.get('inference-header-content-length'));
    const json = JSON.parse(body.subarray(0, jsonLength).toString('utf8')) as { outputs: Array<{ shape: number[]; parameters: { binary_data_size: number }; data?: unknown }> };
    const [output] = json.outputs;
    assert.deepEqual(output.shape, [2, 3]);
    assert.equal(output.data, undefined, 'a binary output has no data in the JSON');
    assert.equal(output.parameters.binary_data_size, body.length - jsonLength);
    const decoded: string[] = [];
    for (let at = jsonLength; at < body.length; ) {
      const length = body.readUInt32LE(at);
      decoded.push(body.subarray(at + 4, at + 4 + length).toString('utf8'));
      at += 4 + length;
    }
    assert.deepEqual(entries(decoded), await expectedEntries(images));
  });

  test('FP32: every class’s probability, in JSON (also the default output) and binary, agreeing with the classification and with each other', async () => {
    const [catTop] = (await classify(images[0])).predictions;
    const asJson = await infer({ inputs: [imageInput(images)], outputs: [{ name: 'probabilities' }] });
    assert.equal(asJson.status, 200, JSON.stringify(asJson.json));
    const [output] = asJson.json.outputs as Array<{ datatype: string; shape: number[]; data: number[] }>;
    assert.equal(output.datatype, 'FP32');
    assert.deepEqual(output.shape, [2, 1000]);
    const rows = [output.data.slice(0, 1000), output.data.slice(1000)];
    for (const row of rows) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-3, 'a softmax row sums to 1');
    const argmax = rows[0].indexOf(Math.max(...rows[0]));
    assert.equal(argmax, catTop.index, 'its most probable class is the one the hub’s API names');
    assert.ok(Math.abs(rows[0][argmax] - catTop.probability) < 1e-4);
    const byDefault = await infer({ inputs: [imageInput(images)] });
    assert.deepEqual((byDefault.json.outputs as Array<{ data: number[] }>)[0].data, output.data, 'no outputs asked: every output, the FP32 probabilities');

    const header = Buffer.from(JSON.stringify({ inputs: [imageInput(images)], parameters: { binary_data_output: true } }));
    const response = await fetch(`${hub.http}${MODEL}/infer`, { method: 'POST', headers: { 'Inference-Header-Content-Length': String(header.length) }, body: new Uint8Array(header) });
    const body = Buffer.from(await response.arrayBuffer());
    const jsonLength = Number(response.headers.get('inference-header-content-length'));
    const json = JSON.parse(body.subarray(0, jsonLength).toString('utf8')) as { outputs: Array<{ parameters: { binary_data_size: number } }> };
    assert.equal(json.outputs[0].parameters.binary_data_size, 2 * 1000 * 4);
    const floats = Array.from({ length: 2000 }, (_, i) => body.readFloatLE(jsonLength + 4 * i));
    floats.forEach((value, i) => assert.ok(Math.abs(value - output.data[i]) < 1e-6, `value ${i}`));
  });

  test('FP32 input: the images as the model takes them (the hub’s own pixels, caffe-made) give the answers of their files, in JSON and binary', async () => {
    const tensors = await Promise.all(images.map(modelInputOf));
    const expected = await Promise.all(images.map(classify));
    const asJson = await infer({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 224, 224, 3], data: tensors.flatMap((tensor) => Array.from(tensor)) }],
      outputs: [{ name: 'probabilities', parameters: { classification: 3 } }],
    });
    assert.equal(asJson.status, 200, JSON.stringify(asJson.json).slice(0, 300));
    assert.deepEqual(entries((asJson.json.outputs as Array<{ data: unknown }>)[0].data), await expectedEntries(images));
    const section = Buffer.concat(tensors.map((tensor) => Buffer.from(tensor.buffer, tensor.byteOffset, tensor.byteLength)));
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 224, 224, 3], parameters: { binary_data_size: section.length } }] }));
    const response = await fetch(`${hub.http}${MODEL}/infer`, { method: 'POST', headers: { 'Inference-Header-Content-Length': String(header.length) }, body: new Uint8Array(Buffer.concat([header, section])) });
    assert.equal(response.status, 200);
    const { outputs } = (await response.json()) as { outputs: Array<{ data: number[] }> };
    expected.forEach((reply, i) => {
      for (const p of reply.predictions) assert.ok(Math.abs(outputs[0].data[i * 1000 + p.index] - p.probability) < 1e-4, `image ${i} class ${p.index}`);
    });
    for (const [body, pattern] of [
      [{ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 224, 224], data: [] }] }, /shape \[N, 224, 224, 3\]/],
      [{ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 224, 224, 3], data: [1, 2, 3] }] }, /150528 numbers/],
      [{ inputs: [{ name: 'input', datatype: 'UINT8', shape: [1, 224, 224, 3], data: [] }] }, /FP32/],
    ] as const) {
      const refused = await infer(body);
      assert.equal(refused.status, 400);
      assert.match(String(refused.json.error), pattern);
    }
  });

  test('bad requests get 400 and a message saying what is wrong; the hub keeps serving', async () => {
    const classification = [{ name: 'probabilities', parameters: { classification: 3 } }];
    const cases: Array<[string, unknown, RegExp]> = [
      ['FP32 input', { inputs: [{ name: 'image', datatype: 'FP32', shape: [1], data: [1] }], outputs: classification }, /BYTES/],
      ['unknown input', { inputs: [{ name: 'pixels', datatype: 'BYTES', shape: [1], data: ['x'] }], outputs: classification }, /no input "pixels"/],
      ['shape and data disagree', { inputs: [{ ...imageInput(images), shape: [3] }], outputs: classification }, /3 images/],
      ['not base64', { inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: ['%%%'] }], outputs: classification }, /image 0/],
      ['not an image', { inputs: [imageInput([Buffer.from('plain text, not a picture')])], outputs: classification }, /./],
      ['unknown output', { inputs: [imageInput(images)], outputs: [{ name: 'logits' }] }, /no output "logits"/],
      ['classification of 50', { inputs: [imageInput(images)], outputs: [{ name: 'probabilities', parameters: { classification: 50 } }] }, /1 to 20/],
      ['no inputs', { inputs: [] }, /inputs/],
      ['too many images', { inputs: [{ name: 'image', datatype: 'BYTES', shape: [65], data: [] }], outputs: classification }, /1 to 64/],
    ];
    for (const [name, body, message] of cases) {
      const { status, json } = await infer(body);
      assert.equal(status, 400, `${name}: ${JSON.stringify(json)}`);
      assert.match(String(json.error), message, name);
    }
    const garbage = await fetch(`${hub.http}${MODEL}/infer`, { method: 'POST', body: '{"inputs": [' });
    assert.equal(garbage.status, 400);
    const badHeader = await fetch(`${hub.http}${MODEL}/infer`, { method: 'POST', headers: { 'Inference-Header-Content-Length': '999999' }, body: '{}' });
    assert.equal(badHeader.status, 400);
    assert.match(String(((await badHeader.json()) as { error: string }).error), /Inference-Header-Content-Length/);
    const { status } = await infer({ inputs: [imageInput(images)], outputs: classification });
    assert.equal(status, 200, 'still serving');
  });

  test('48 requests of 4 images at once, no back-off: each answered 200 or 503 overloaded, and the hub keeps serving', async () => {
    const body = { inputs: [imageInput([...images, ...images])], outputs: [{ name: 'probabilities', parameters: { classification: 1 } }] };
    const results = await Promise.all(Array.from({ length: 48 }, () => infer(body)));
    const statuses = results.map((result) => result.status);
    assert.ok(statuses.every((status) => status === 200 || status === 503), JSON.stringify(statuses));
    assert.ok(statuses.includes(200));
    for (const result of results.filter((r) => r.status === 503)) assert.match(String(result.json.error), /overloaded|queue/i);
    assert.equal(hub.child.exitCode, null);
    assert.equal((await infer(body)).status, 200);
  });
});

test('with --api-token the model routes need it (401 {"error"} without); the health routes stay open for probes', async () => {
  const guarded = await launchHub({ args: ['--workers', '1', '--api-token', 'open-sesame'] });
  try {
    assert.equal((await fetch(`${guarded.http}/v2/health/live`)).status, 200);
    assert.equal((await fetch(`${guarded.http}/v2/health/ready`)).status, 200);
    const refused = await fetch(`${guarded.http}${MODEL}`);
    assert.equal(refused.status, 401);
    assert.equal(typeof ((await refused.json()) as { error: unknown }).error, 'string');
    assert.equal((await fetch(`${guarded.http}${MODEL}`, { headers: { Authorization: 'Bearer open-sesame' } })).status, 200);
  } finally {
    await guarded.stop();
  }
});

test('a hub without local workers (--workers 0) refuses the FP32 output and the FP32 input at once, saying what to send instead', async () => {
  const coordinator = await launchHub({ args: ['--workers', '0'] });
  try {
    const response = await fetch(`${coordinator.http}${MODEL}/infer`, { method: 'POST', body: JSON.stringify({ inputs: [imageInput(images)] }) });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /no local workers.*classification/);
    const tensor = await fetch(`${coordinator.http}${MODEL}/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 224, 224, 3], data: Array.from(await modelInputOf(images[0])) }], outputs: [{ name: 'probabilities', parameters: { classification: 3 } }] }),
    });
    assert.equal(tensor.status, 400, 'nor the FP32 input, which only local workers take');
    assert.match(((await tensor.json()) as { error: string }).error, /no local workers.*send the image files/);
  } finally {
    await coordinator.stop();
  }
});

test('a request of several images is taken whole or refused whole: no image of a refused request is computed', async () => {
  const small = await launchHub({ args: ['--workers', '1', '--max-queue', '4'] });
  try {
    const four = { inputs: [imageInput([...images, ...images])], outputs: [{ name: 'probabilities', parameters: { classification: 1 } }] };
    const tooMany = await fetch(`${small.http}${MODEL}/infer`, { method: 'POST', body: JSON.stringify({ ...four, inputs: [imageInput([...images, ...images, ...images])] }) });
    assert.equal(tooMany.status, 400, 'more images than the queue holds can never be taken');
    assert.match(((await tooMany.json()) as { error: string }).error, /at most 4 images.*--max-queue/);
    const imagesComputed = async () =>
      ((await (await fetch(`${small.http}/api/status`)).json()) as { executors: Array<{ images: number }> }).executors.reduce((sum, worker) => sum + worker.images, 0);
    const before = await imagesComputed();
    const statuses = await Promise.all(
      Array.from({ length: 6 }, async () => (await fetch(`${small.http}${MODEL}/infer`, { method: 'POST', body: JSON.stringify(four) })).status),
    );
    assert.ok(statuses.every((status) => status === 200 || status === 503), JSON.stringify(statuses));
    assert.ok(statuses.includes(503), `six requests of four against a queue of four: some refused (${statuses})`);
    const answered = statuses.filter((status) => status === 200).length;
    assert.equal((await imagesComputed()) - before, 4 * answered, 'the workers computed the images of the answered requests, and no others');
  } finally {
    await small.stop();
  }
});
