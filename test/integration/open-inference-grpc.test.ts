/**
 * The Open Inference Protocol (KServe v2) over gRPC against a real hub (the tiny model, real
 * worker threads, a real HTTP/2 socket on loopback): the health service, metadata, inference
 * with raw and typed contents giving the ZeroMQ front's answers, the classification extension,
 * every error as a gRPC status, deadlines, the API token as metadata; and an independent client
 * in Python whose stubs are generated from the .proto at test time.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { OpenInferenceGrpcClient, bytesElements, lengthPrefixed, parseEntry } from '../../client/open-inference-grpc-client.ts';
import { preprocessImage } from '../../server/preprocess/preprocess-image.ts';
import { toCaffeInput } from '../../shared/caffe.ts';
import { grpcHealthStatus } from '../../kit/grpc-health.ts';
import { launchHub } from '../../kit/hub-process.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import { REPO_ROOT } from '../../kit/paths.ts';
import { dealerRequest, expectSuccess, payloadOf, photo } from '../../kit/zmq-clients.ts';
import type { ClassifyReply } from '../../shared/protocol/classify.ts';
import { OPEN_INFERENCE_PROTO } from '../../shared/protocol/open-inference-grpc.ts';
import type { ModelInferRequest, ModelInferResponse } from '../../shared/protocol/open-inference-grpc.ts';

const TOKEN = 'grpc-sesame';
const MAX_QUEUE = 16;
const images = [photo('chelsea'), photo('coffee'), photo('astronaut')];

let hub: HubProcess;
let client: OpenInferenceGrpcClient;
let sha256: string;
let zmqAnswers: ClassifyReply[];
before(async () => {
  hub = await launchHub({ args: ['--workers', '1', '--api-token', TOKEN, '--max-queue', String(MAX_QUEUE)] });
  client = new OpenInferenceGrpcClient(hub.grpc, { token: TOKEN });
  zmqAnswers = await Promise.all(images.map(async (image) => expectSuccess((await dealerRequest(hub.zmq, payloadOf(image, { top: 3 }))).reply)));
  sha256 = zmqAnswers[0].model.sha256;
});
after(async () => {
  client?.close();
  assert.equal(await hub?.stop(), 0, 'the hub drains and exits 0');
});

/** A ModelInfer call made exactly as the message is given, and its error when it fails. */
async function inferError(message: Partial<ModelInferRequest>, options: { token?: string; deadlineMs?: number } = {}): Promise<ServiceError> {
  const plain = new OpenInferenceGrpcClient(hub.grpc, options.token === undefined ? { token: TOKEN } : options.token ? { token: options.token } : {});
  try {
    await plain.call('ModelInfer', { model_name: 'resnet50', ...message }, options.deadlineMs);
  } catch (error) {
    return error as ServiceError;
  } finally {
    plain.close();
  }
  throw new assert.AssertionError({ message: `expected ${JSON.stringify(message).slice(0, 200)} to fail` });
}

function hubCode(error: ServiceError): string | undefined {
  return error.metadata?.get('resnet-hub-error-code')[0]?.toString();
}

const rawImages = (list: Buffer[]) => ({
  inputs: [{ name: 'image', datatype: 'BYTES', shape: [list.length] }],
  outputs: [{ name: 'probabilities', parameters: { classification: { int64_param: 3 } } }],
  raw_input_contents: [lengthPrefixed(list)],
});

describe('health and metadata', () => {
  test('the standard health service says SERVING without a token, for the server and for the inference service', async () => {
    for (const service of ['', 'inference.GRPCInferenceService']) assert.equal(await grpcHealthStatus(hub.grpc, service), 'SERVING', service || 'the server');
  });

  test('live, ready, server metadata with the extensions, model metadata and readiness; unknown model or version NOT_FOUND', async () => {
    assert.equal(await client.serverLive(), true);
    assert.equal(await client.serverReady(), true);
    const server = await client.serverMetadata();
    assert.equal(server.name, 'resnet-hub');
    assert.deepEqual([...server.extensions].sort(), ['binary_tensor_data', 'classification']);
    assert.deepEqual(await client.modelMetadata(), {
      name: 'resnet50',
      versions: [sha256],
      platform: 'onnx_onnxv1',
      inputs: [
        { name: 'image', datatype: 'BYTES', shape: [-1] },
        { name: 'input', datatype: 'FP32', shape: [-1, 224, 224, 3] },
      ],
      outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 1000] }],
    });
    assert.equal(await client.modelReady('resnet50', sha256.slice(0, 12)), true, 'a version by its first 12 hex digits');
    for (const [name, version] of [
      ['resnet18', ''],
      ['resnet50', '0'.repeat(64)],
    ]) {
      await assert.rejects(client.modelMetadata(name, version), (error: ServiceError) => error.code === status.NOT_FOUND, `${name} ${version}`);
      await assert.rejects(client.modelReady(name, version), (error: ServiceError) => error.code === status.NOT_FOUND);
    }
  });
});

describe('inference gives the ZeroMQ front’s answers', () => {
  for (const raw of [true, false]) {
    test(`${raw ? 'raw' : 'typed'} contents: top 3 and every class’s probability, as ZeroMQ gives them (within 1e-4); the weights as the version; the id echoed`, async () => {
      const top = await client.infer(images, { raw, id: 'three' });
      assert.equal(top.modelName, 'resnet50');
      assert.equal(top.modelVersion, sha256);
      assert.equal(top.id, 'three');
      const full = await client.infer(images, { raw, probabilities: true });
      assert.equal(full.probabilities?.length, images.length);
      zmqAnswers.forEach((answer, i) => {
        assert.deepEqual(
          top.classes[i].map((c) => [c.index, c.label]),
          answer.predictions.map((p) => [p.index, p.label]),
          `image ${i}: the same classes in the same order`,
        );
        answer.predictions.forEach((p, k) => {
          assert.ok(Math.abs(top.classes[i][k].probability - p.probability) < 1e-4, `image ${i} class ${k}: ${top.classes[i][k].probability} vs ${p.probability}`);
          assert.ok(Math.abs(full.probabilities![i][p.index] - p.probability) < 1e-4, `image ${i}: FP32 probability of class ${p.index}`);
        });
        assert.ok(Math.abs(full.probabilities![i].reduce((a, b) => a + b, 0) - 1) < 1e-3, 'a softmax row sums to 1');
      });
    });
  }

  test('FP32 input, raw and typed: the images as the model takes them give ZeroMQ’s answers for their files', async () => {
    const tensors = await Promise.all(images.map(async (image) => toCaffeInput((await preprocessImage(image, { maxPixels: 40_000_000 })).rgb, 1)));
    const input = { name: 'input', datatype: 'FP32', shape: [images.length, 224, 224, 3] };
    const classification = [{ name: 'probabilities', parameters: { classification: { int64_param: 3 } } }];
    const raw = Buffer.concat(tensors.map((tensor) => Buffer.from(tensor.buffer, tensor.byteOffset, tensor.byteLength)));
    for (const message of [
      { model_name: 'resnet50', inputs: [input], outputs: classification, raw_input_contents: [raw] },
      { model_name: 'resnet50', inputs: [{ ...input, contents: { fp32_contents: tensors.flatMap((tensor) => Array.from(tensor)) } }], outputs: classification },
    ]) {
      const answer = await client.call<ModelInferResponse>('ModelInfer', message);
      const entries = bytesElements(answer, 0).map(parseEntry);
      zmqAnswers.forEach((expected, i) =>
        expected.predictions.forEach((p, k) => {
          assert.equal(entries[3 * i + k].index, p.index, `image ${i} class ${k}`);
          assert.ok(Math.abs(entries[3 * i + k].probability - p.probability) < 1e-4);
        }),
      );
    }
  });

  test('raw answers for raw requests, typed for typed', async () => {
    const rawAnswer = await client.call<{ raw_output_contents: Buffer[]; outputs: Array<{ contents: unknown; shape: number[] }> }>('ModelInfer', { model_name: 'resnet50', ...rawImages(images) });
    assert.equal(rawAnswer.raw_output_contents.length, 1);
    assert.deepEqual(rawAnswer.outputs[0].shape, [3, 3]);
    const typed = await client.call<{ raw_output_contents: Buffer[] }>('ModelInfer', {
      model_name: 'resnet50',
      inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [images[0]] } }],
    });
    assert.equal(typed.raw_output_contents.length, 0);
  });

  test('an independent Python client (stubs generated from the .proto now) gets the same answers, raw and typed, and the errors the specification gives', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'resnet-hub-grpc-python-'));
    try {
      const files = await Promise.all(
        images.map(async (image, i) => {
          const file = path.join(folder, `image-${i}.jpg`);
          await writeFile(file, image);
          return file;
        }),
      );
      const script = path.join(REPO_ROOT, 'test/support/open_inference_grpc_client.py');
      const { stdout } = await promisify(execFile)('/usr/bin/python3', [script, OPEN_INFERENCE_PROTO, hub.grpc, TOKEN, ...files], { timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
      const result = JSON.parse(stdout) as {
        live: boolean;
        extensions: string[];
        raw: PythonAnswer;
        typed: PythonAnswer;
        errors: Record<string, string>;
      };
      assert.equal(result.live, true);
      assert.ok(result.extensions.includes('classification'));
      for (const way of ['raw', 'typed'] as const) {
        const answer = result[way];
        assert.equal(answer.model_version, sha256);
        assert.equal(answer.id, 'from-python');
        assert.equal(answer.raw_outputs, way === 'raw');
        zmqAnswers.forEach((expected, i) => {
          expected.predictions.forEach((p, k) => {
            const [probability, index, ...label] = answer.entries[3 * i + k].split(':');
            assert.equal(Number(index), p.index, `${way} image ${i} class ${k}`);
            assert.equal(label.join(':'), p.label);
            assert.ok(Math.abs(Number(probability) - p.probability) < 1e-4);
            assert.ok(Math.abs(answer.probabilities[i][p.index] - p.probability) < 1e-4, `${way} image ${i}: FP32 of class ${p.index}`);
          });
        });
      }
      assert.deepEqual(result.errors, { unknown_model: 'NOT_FOUND', fp32_images: 'INVALID_ARGUMENT', no_token: 'UNAUTHENTICATED' });
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});

interface PythonAnswer {
  model_version: string;
  id: string;
  raw_outputs: boolean;
  entries: string[];
  probabilities: number[][];
}

describe('errors are gRPC statuses, and the hub keeps serving', () => {
  test('bad requests are INVALID_ARGUMENT with a message saying what is wrong, and the hub’s code in a trailer', async () => {
    const classification = [{ name: 'probabilities', parameters: { classification: { int64_param: 3 } } }];
    const one = { name: 'image', datatype: 'BYTES', shape: [1] };
    const cases: Array<[string, Partial<ModelInferRequest>, RegExp]> = [
      ['FP32 input', { inputs: [{ ...one, datatype: 'FP32', contents: { fp32_contents: [1] } }], outputs: classification }, /BYTES/],
      ['unknown input', { inputs: [{ ...one, name: 'pixels', contents: { bytes_contents: [images[0]] } }], outputs: classification }, /no input "pixels"/],
      ['raw and typed at once', { inputs: [{ ...one, contents: { bytes_contents: [images[0]] } }], raw_input_contents: [lengthPrefixed([images[0]])] }, /one way/],
      ['raw contents for no input', { inputs: [one], raw_input_contents: [lengthPrefixed([images[0]]), lengthPrefixed([images[0]])] }, /one per input/],
      ['a raw length past the end', { inputs: [one], raw_input_contents: [Buffer.from([200, 0, 0, 0, 1, 2, 3])] }, /runs past/],
      ['shape and data disagree', { inputs: [{ ...one, shape: [2], contents: { bytes_contents: [images[0]] } }], outputs: classification }, /2 images/],
      ['not an image', { inputs: [{ ...one, contents: { bytes_contents: [Buffer.from('plain text, not a picture')] } }], outputs: classification }, /./],
      ['unknown output', { ...rawImages([images[0]]), outputs: [{ name: 'logits' }] }, /no output "logits"/],
      ['classification of 50', { ...rawImages([images[0]]), outputs: [{ name: 'probabilities', parameters: { classification: { int64_param: 50 } } }] }, /1 to 20/],
      ['too many images', { inputs: [{ ...one, shape: [65] }], raw_input_contents: [Buffer.alloc(0)] }, /1 to 64/],
    ];
    for (const [name, message, pattern] of cases) {
      const error = await inferError(message);
      assert.equal(error.code, status.INVALID_ARGUMENT, `${name}: ${error.code} ${error.details}`);
      assert.match(error.details, pattern, name);
      assert.ok(hubCode(error)?.startsWith('invalid') || ['corrupt_image', 'unsupported_image'].includes(hubCode(error) ?? ''), `${name}: code ${hubCode(error)}`);
    }
    assert.equal((await inferError({ ...rawImages([images[0]]), model_name: 'resnet18' })).code, status.NOT_FOUND);
    assert.equal((await inferError({ ...rawImages([images[0]]), model_version: '1' })).code, status.NOT_FOUND);
    assert.equal((await client.infer([images[0]])).classes.length, 1, 'still serving');
  });

  test('without the API token, or with a wrong one: UNAUTHENTICATED', async () => {
    for (const token of ['', 'not-the-token']) {
      const error = await inferError(rawImages([images[0]]), { token });
      assert.equal(error.code, status.UNAUTHENTICATED, `token ${JSON.stringify(token)}`);
      assert.match(error.details, /authorization: Bearer/);
    }
    const anonymous = new OpenInferenceGrpcClient(hub.grpc);
    await assert.rejects(anonymous.serverMetadata(), (error: ServiceError) => error.code === status.UNAUTHENTICATED);
    anonymous.close();
  });

  test('the gRPC deadline is the request’s: one that passes in the queue is DEADLINE_EXCEEDED, counted by the hub as a timeout', async () => {
    // A hub that holds a lone request up to a second for a batch to fill: the deadline passes while it waits.
    const holding = await launchHub({ args: ['--workers', '1', '--max-batch', '4', '--batch-wait-ms', '1000'] });
    const patient = new OpenInferenceGrpcClient(holding.grpc);
    try {
      assert.equal((await patient.infer([images[0]])).classes.length, 1, 'connected, and a call without a deadline is answered');
      const started = performance.now();
      const late = await patient.infer([images[0]], { deadlineMs: 200 }).then(
        () => assert.fail('the call was answered past its deadline'),
        (error: ServiceError) => error,
      );
      assert.equal(late.code, status.DEADLINE_EXCEEDED, `${late.code} ${late.details}`);
      assert.ok(performance.now() - started < 900, 'refused at its deadline, not when the batch wait ended');
      assert.equal(await hubMetric('resnet_hub_requests_total{outcome="timeout"', holding), 1, 'the hub itself answered it as a timeout');
      assert.equal((await patient.infer([images[0]], { deadlineMs: 30_000 })).classes.length, 1, 'a deadline far enough away is met');
    } finally {
      patient.close();
      await holding.stop();
    }
  });

  test(`48 calls of 4 images at once against --max-queue ${MAX_QUEUE}, no back-off: each answered, a result or RESOURCE_EXHAUSTED`, async () => {
    const four = [...images, images[0]];
    const results = await Promise.all(Array.from({ length: 48 }, () => client.infer(four).catch((error: ServiceError) => error)));
    const refused = results.filter((result) => result instanceof Error) as ServiceError[];
    for (const error of refused) {
      assert.equal(error.code, status.RESOURCE_EXHAUSTED, `${error.code} ${error.details}`);
      assert.equal(hubCode(error), 'overloaded');
    }
    assert.ok(refused.length > 0 && refused.length < results.length, `${refused.length} of ${results.length} refused`);
    assert.equal(hub.child.exitCode, null);
    assert.equal((await client.infer(four)).classes.length, 4, 'still serving');
  });
});

/** A series of a hub's metrics: the first line that starts with `series`. */
async function hubMetric(series: string, of: HubProcess = hub): Promise<number> {
  const text = await (await fetch(`${of.http}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(series));
  return line ? Number(line.split(' ').pop()) : 0;
}
