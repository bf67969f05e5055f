/**
 * The seed's contract over real ZeroMQ sockets on loopback, against the real hub process
 * (worker threads, the generated ResNet50): DEALER and REQ clients, concurrency, bad input.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as zmq from 'zeromq';
import { ENGINE_NAMES } from '../../server/engines/engine.ts';
import type { EngineName } from '../../server/engines/engine.ts';
import { launchHub } from '../../kit/hub-process.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import { dealerRequest, expectError, expectSuccess, payloadOf, photo, PHOTO_NAMES, reqRequest } from '../../kit/zmq-clients.ts';
import { crafted } from '../../kit/bad-images.ts';
import { formatProbability } from '../../shared/python-float.ts';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { PHOTOS_DIR, REPO_ROOT } from '../../kit/paths.ts';

async function runPython(script: string, args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('/usr/bin/python3', [script, ...args], { timeout: 90_000 });
  return stdout;
}

const PREDS_FORMAT = /^[^,:]+ : [0-9.e-]+, [^,:]+ : [0-9.e-]+, [^,:]+ : [0-9.e-]+$/;
const MAX_IMAGE_BYTES = 1024 * 1024;

let hub: HubProcess;

before(async () => {
  hub = await launchHub({ args: ['--max-image-bytes', String(MAX_IMAGE_BYTES)] });
});

after(async () => {
  await hub?.stop();
});

describe('seed-compatible replies', () => {
  test('a DEALER client sending one JSON frame gets the top 3 in the seed format', async () => {
    const { reply } = await dealerRequest(hub.zmq, payloadOf(photo('chelsea')));
    const result = expectSuccess(reply);
    assert.match(result.preds, PREDS_FORMAT);
    assert.equal(result.predictions.length, 3);
    assert.equal(result.preds, result.predictions.map((p) => `${p.label} : ${formatProbability(p.probability)}`).join(', '));
    assert.equal(result.executor.kind, 'local');
    assert.match(result.executor.id, /^local-\d+$/);
    assert.ok(ENGINE_NAMES.includes(result.executor.engine as EngineName), result.executor.engine);
    assert.deepEqual(Object.keys(result.model).sort(), ['name', 'precision', 'sha256', 'source', 'weights']);
    assert.equal(result.model.precision, 'fp32', 'fp32 stays the default');
    assert.equal(result.model.weights, 'untrained');
    for (const key of ['queue_ms', 'preprocess_ms', 'inference_ms', 'total_ms'] as const) {
      assert.equal(typeof result.timing[key], 'number', key);
    }
    assert.ok(result.timing.total_ms >= result.timing.inference_ms);
    const [first, second, third] = result.predictions;
    assert.ok(first.probability >= second.probability && second.probability >= third.probability);
  });

  test('a REQ client gets its reply behind the empty delimiter', async () => {
    const dealer = expectSuccess((await dealerRequest(hub.zmq, payloadOf(photo('coffee')))).reply);
    const { reply, frames } = await reqRequest(hub.zmq, payloadOf(photo('coffee')));
    assert.equal(frames, 1, 'REQ strips the delimiter and sees one frame');
    assert.equal(expectSuccess(reply).preds, dealer.preds);
  });

  test('top, request_id and a data: URL prefix are honoured', async () => {
    const payload = `data:image/jpeg;base64,${photo('rocket').toString('base64')}`;
    const { reply } = await dealerRequest(hub.zmq, JSON.stringify({ payload, top: 7, request_id: 'abc-1' }));
    const result = expectSuccess(reply);
    assert.equal(result.predictions.length, 7);
    assert.equal(result.request_id, 'abc-1');
    assert.match(result.preds, PREDS_FORMAT, 'preds keeps the seed\'s top 3 whatever top asks');
  });
});

describe("the seed's Python clients (pyzmq)", () => {
  for (const client of ['seed_dealer_client.py', 'seed_req_client.py']) {
    test(`${client} gets the top 3 in the seed's format`, async () => {
      const ours = expectSuccess((await dealerRequest(hub.zmq, payloadOf(photo('astronaut')))).reply);
      const output = await runPython(`${REPO_ROOT}test/clients/${client}`, [hub.zmq.replace('127.0.0.1', 'localhost'), `${PHOTOS_DIR}/astronaut.jpg`]);
      const reply = JSON.parse(output) as { preds: string };
      assert.match(reply.preds, PREDS_FORMAT);
      assert.equal(reply.preds, ours.preds);
    });
  }
});

describe('concurrency', () => {
  test('20 concurrent DEALER clients with 5 images each get exactly their own answers', async () => {
    const images = PHOTO_NAMES.slice(0, 5).map((name) => ({ name, bytes: photo(name) }));
    const expected = new Map<string, string>();
    for (const image of images) {
      expected.set(image.name, expectSuccess((await dealerRequest(hub.zmq, payloadOf(image.bytes))).reply).preds);
    }
    assert.equal(new Set(expected.values()).size, 5, 'the five images have five different answers');

    const clients = Array.from({ length: 20 }, async (_, c) => {
      const socket = new zmq.Dealer({ receiveTimeout: 120_000, linger: 0 });
      socket.connect(hub.zmq);
      const answers: Array<{ sent: string; got: string }> = [];
      try {
        // Each client walks the images from its own starting point, one request at a time.
        for (let i = 0; i < images.length; i++) {
          const image = images[(c + i) % images.length];
          await socket.send(payloadOf(image.bytes));
          const [frame] = await socket.receive();
          answers.push({ sent: image.name, got: expectSuccess(JSON.parse(frame.toString())).preds });
        }
      } finally {
        socket.close();
      }
      return answers;
    });
    const results = (await Promise.all(clients)).flat();
    assert.equal(results.length, 100);
    for (const { sent, got } of results) assert.equal(got, expected.get(sent), `answer for ${sent}`);
  });

  test('a client that goes away mid-request disturbs nobody', async () => {
    const quitter = new zmq.Dealer({ linger: 0 });
    quitter.connect(hub.zmq);
    await quitter.send(payloadOf(photo('astronaut')));
    quitter.close();
    const { reply } = await dealerRequest(hub.zmq, payloadOf(photo('camera')));
    expectSuccess(reply);
  });
});

describe('bad input gets a clear error, fast, and the service keeps serving', () => {
  const cases: Array<{ name: string; frames: Array<string | Buffer> | string; code: string }> = [
    { name: 'a frame that is not JSON', frames: 'hello there', code: 'invalid_json' },
    { name: 'JSON that is not an object', frames: '[1, 2, 3]', code: 'invalid_request' },
    { name: 'JSON null', frames: 'null', code: 'invalid_request' },
    { name: 'no payload', frames: '{"image": "abc"}', code: 'invalid_request' },
    { name: 'a payload that is not a string', frames: '{"payload": 12345}', code: 'invalid_request' },
    { name: 'invalid base64', frames: '{"payload": "not base64 at all!!"}', code: 'invalid_base64' },
    { name: 'bytes that are no image', frames: payloadOf(crafted.notAnImage()), code: 'unsupported_image' },
    { name: 'a truncated JPEG', frames: payloadOf(crafted.truncatedJpeg(photo('chelsea'))), code: 'corrupt_image' },
    { name: 'an image over --max-image-bytes', frames: payloadOf(Buffer.alloc(MAX_IMAGE_BYTES + 1, 7)), code: 'payload_too_large' },
    { name: 'a PNG declaring 50000×50000 pixels', frames: payloadOf(crafted.hugePngHeader(50_000, 50_000)), code: 'too_many_pixels' },
    { name: 'top of 0', frames: payloadOf(photo('chelsea'), { top: 0 }), code: 'invalid_top' },
    { name: 'top of 21', frames: payloadOf(photo('chelsea'), { top: 21 }), code: 'invalid_top' },
    { name: 'top as a string', frames: payloadOf(photo('chelsea'), { top: '3' }), code: 'invalid_top' },
    { name: 'two body frames', frames: ['{"payload": "aGk="}', 'extra'], code: 'invalid_frames' },
  ];

  for (const { name, frames, code } of cases) {
    test(`${name} → ${code}`, async () => {
      const { reply, ms } = await dealerRequest(hub.zmq, frames);
      const error = expectError(reply);
      assert.equal(error.error.code, code);
      assert.ok(error.error.message.length > 10, 'the message says what is wrong');
      assert.ok(ms < 100, `answered in ${ms.toFixed(1)} ms`);
      const next = await dealerRequest(hub.zmq, payloadOf(photo('coffee')));
      expectSuccess(next.reply);
    });
  }

  test('a REQ client with two body frames gets invalid_frames behind its delimiter', async () => {
    const { reply, ms } = await reqRequest(hub.zmq, ['{"payload": "aGk="}', 'extra']);
    assert.equal(expectError(reply).error.code, 'invalid_frames');
    assert.ok(ms < 100);
  });

  test('an error echoes the request_id when it could be read', async () => {
    const { reply } = await dealerRequest(hub.zmq, JSON.stringify({ payload: '%%%', request_id: 'bad-1' }));
    assert.equal(expectError(reply).request_id, 'bad-1');
  });
});
