/**
 * The volunteer page in a real headless Chromium with real WebGPU (SwiftShader): it connects to
 * a minimal hub side (test/support/fake-volunteer-hub.ts; the real hub is in volunteer-e2e),
 * downloads the tiny test model once, computes a job on WebGPU with the same answer as TF.js on the CPU, keeps the model in
 * IndexedDB across reloads, honours ?fault=wrong, Stop/Start, the hub's stop and quarantine, and
 * logs no console errors. Also checks the static-file handlers it is served with.
 */
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { loadLayersModelFromStore, readManifest } from '../../../model-store/store.ts';
import { generateSyntheticImages } from '../../../model-tools/synthetic-images.ts';
import { loadTfjs } from '../../../lib/tfjs-runtime.ts';
import { MODEL_URL_PREFIX, WEB_APP_ROUTES, serveDirectory, serveModelStore } from '../../../server/front/static-files.ts';
import type { GetHandler } from '../../../server/front/static-files.ts';
import { ensureWebBuild } from '../../../server/web-build.ts';
import { INPUT_VALUES_PER_IMAGE, toCaffeInput } from '../../../shared/caffe.ts';
import { NUM_CLASSES, topK } from '../../../shared/labels.ts';
import type { TopK } from '../../../shared/labels.ts';
import { VOLUNTEER_PROTOCOL_VERSION, encodeJobFrame } from '../../../shared/protocol/volunteer.ts';
import { launchChromium } from '../../../kit/browser.ts';
import type { LaunchedBrowser, TrackedPage } from '../../../kit/browser.ts';
import { TestHub, waitFor } from '../../support/fake-volunteer-hub.ts';
import type { Of } from '../../support/fake-volunteer-hub.ts';
import { REPO_ROOT } from '../../../kit/paths.ts';

const MODEL_DIR = `${REPO_ROOT}models/test-tiny`;
const TOP_K = 5;
const HEARTBEAT_MS = 1000;
/** First load on SwiftShader: TF.js init, download, shader compilation. Generous for slow CI. */
const LOAD_TIMEOUT_MS = 120_000;

// ---------------------------------------------------------------------------------------------
// Fixture: built app + model store on a tiny HTTP server, the test hub, Chromium.

let server: Server;
let base: string;
let hub: TestHub;
let browser: LaunchedBrowser;
let sha256: string;
let shardRequests = 0;
const images = splitImages(generateSyntheticImages(7, 2), 2);
let reference: TopK[];

function splitImages(pixels: Uint8Array, count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => pixels.slice(i * INPUT_VALUES_PER_IMAGE, (i + 1) * INPUT_VALUES_PER_IMAGE));
}

before(async () => {
  const manifest = await readManifest(MODEL_DIR);
  assert.ok(manifest, `${MODEL_DIR} has no model; run: npx tsx model-tools/generate-cli.ts --architecture tiny-resnet --model-dir models/test-tiny`);
  sha256 = manifest.weightsSha256;

  // The reference: TF.js on the CPU, on exactly the bytes the tab gets.
  const tf = await loadTfjs('cpu');
  const model = await loadLayersModelFromStore(tf, MODEL_DIR);
  const output = tf.tidy(() => model.predict(tf.tensor4d(toCaffeInput(new Uint8Array(Buffer.concat(images)), 2), [2, 224, 224, 3])) as import('@tensorflow/tfjs').Tensor);
  const probabilities = await output.data();
  output.dispose();
  model.dispose();
  reference = [0, 1].map((b) => topK(probabilities.subarray(b * NUM_CLASSES, (b + 1) * NUM_CLASSES), TOP_K));
  for (const top of reference) {
    // The ranking must be well defined for "same top-3 order" to mean anything.
    for (let i = 0; i < 3; i++) assert.ok(top.probabilities[i] - top.probabilities[i + 1] > 1e-3, `reference top-k too close: ${top.probabilities}`);
  }

  const build = await ensureWebBuild({ info: () => {} });
  console.log(`# web build: ${build.built ? `built in ${(build.ms / 1000).toFixed(1)} s` : 'up to date'}`);

  const modelStore = serveModelStore(MODEL_DIR);
  const handlers: GetHandler[] = [
    (request, response, url) => {
      if (/^\/models\/current\/group\d+-shard\d+of\d+\.bin$/.test(url.pathname)) shardRequests++;
      return modelStore(request, response, url);
    },
    serveDirectory(build.outDir, { prefix: '/', spaRoutes: { ...WEB_APP_ROUTES }, cache: 'immutable-assets' }),
  ];
  hub = new TestHub(sha256, { heartbeatMs: HEARTBEAT_MS, topK: TOP_K });
  server = createServer((request: IncomingMessage, response: ServerResponse) => {
    void (async () => {
      const url = new URL(request.url ?? '/', 'http://localhost');
      for (const handler of handlers) if (await handler(request, response, url)) return;
      response.writeHead(404, { 'Content-Type': 'text/plain' });
      response.end('not found');
    })().catch((error: unknown) => {
      response.destroy(error as Error);
    });
  });
  server.on('upgrade', (request, socket, head) => {
    if (new URL(request.url ?? '/', 'http://localhost').pathname !== '/ws/volunteer') {
      socket.destroy();
      return;
    }
    hub.wss.handleUpgrade(request, socket, head, (ws) => hub.wss.emit('connection', ws, request));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // 127.0.0.1 is a secure context, which WebGPU requires.
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  hub?.close();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

async function volunteerState(page: TrackedPage): Promise<Window['volunteerState']> {
  return page.page.evaluate(() => window.volunteerState);
}

async function waitForState(page: TrackedPage, state: string, timeoutMs = 15_000): Promise<void> {
  await page.page.waitForFunction((wanted) => document.body.dataset.state === wanted, state, { timeout: timeoutMs });
}

function raw(path: string, method = 'GET', headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> {
  // node:http sends the path exactly as given (fetch would normalise the dot segments away).
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function assertMatchesReference(result: Of<'result'>, label: string, count = 2): void {
  assert.equal(result.indices.length, count, `${label}: one row per image`);
  for (let b = 0; b < count; b++) {
    const ref = reference[b];
    assert.deepEqual(result.indices[b].slice(0, 3), ref.indices.slice(0, 3), `${label}: image ${b} top-3 differs from the CPU reference`);
    assert.equal(result.indices[b].length, TOP_K);
    result.indices[b].forEach((index, i) => {
      const at = ref.indices.indexOf(index);
      if (at >= 0) {
        const delta = Math.abs(result.probabilities[b][i] - ref.probabilities[at]);
        assert.ok(delta <= 0.02, `${label}: image ${b} class ${index}: ${result.probabilities[b][i]} vs reference ${ref.probabilities[at]}`);
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------

test('static files: page routes, content types, ETag/304, HEAD, no traversal or dotfiles', async () => {
  for (const route of ['/', '/volunteer', '/dashboard', '/volunteer.html', '/volunteer/']) {
    const response = await raw(route);
    assert.equal(response.status, 200, route);
    assert.equal(response.headers['content-type'], 'text/html; charset=utf-8', route);
    assert.equal(response.headers['cache-control'], 'no-cache', route);
    assert.match(response.body.toString(), /resnet-hub/, route);
  }
  const volunteer = (await raw('/volunteer')).body.toString();
  const script = /src="(\/assets\/[^"]+\.js)"/.exec(volunteer)?.[1];
  assert.ok(script, 'volunteer.html loads a bundled script');
  const js = await raw(script);
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');

  const wasm = (await readdir(`${REPO_ROOT}web/dist/assets`)).find((f) => f.endsWith('.wasm'));
  assert.ok(wasm, 'the wasm binaries are bundled');
  const wasmResponse = await raw(`/assets/${wasm}`, 'HEAD');
  assert.equal(wasmResponse.status, 200);
  assert.equal(wasmResponse.headers['content-type'], 'application/wasm');
  assert.ok(Number(wasmResponse.headers['content-length']) > 100_000);
  assert.equal(wasmResponse.body.length, 0, 'HEAD has no body');

  const etag = js.headers.etag;
  assert.ok(etag);
  assert.equal((await raw(script, 'GET', { 'If-None-Match': etag })).status, 304);
  assert.equal((await raw(script, 'GET', { 'If-None-Match': `"nope", W/${etag}` })).status, 304);

  for (const bad of ['/.build-stamp', '/%2e%2e/package.json', '/assets/%2e%2e/%2e%2e/package.json', '/..%2fpackage.json', '/assets/..%5c..%5cpackage.json', '/%00']) {
    assert.equal((await raw(bad)).status, 404, bad);
  }
  assert.equal((await raw('/../package.json')).status, 404);
  assert.equal((await raw('/nope.js')).status, 404);

  // The model store: model.json, manifest.json and the listed shards only; ETag from the hash.
  const modelJson = await raw(`${MODEL_URL_PREFIX}model.json`);
  assert.equal(modelJson.status, 200);
  assert.equal(modelJson.headers['content-type'], 'application/json; charset=utf-8');
  assert.equal(modelJson.headers['cache-control'], 'no-cache');
  assert.ok(modelJson.headers.etag?.includes(sha256));
  assert.deepEqual(modelJson.body, await readFile(`${MODEL_DIR}/model.json`));
  const manifest = await raw(`${MODEL_URL_PREFIX}manifest.json`);
  assert.equal(JSON.parse(manifest.body.toString()).weightsSha256, sha256);
  const shardPath = (JSON.parse(modelJson.body.toString()) as { weightsManifest: Array<{ paths: string[] }> }).weightsManifest[0].paths[0];
  const shardsBefore = shardRequests;
  const shard = await raw(`${MODEL_URL_PREFIX}${shardPath}`);
  assert.equal(shard.status, 200);
  assert.equal(shard.headers['content-type'], 'application/octet-stream');
  assert.equal((await raw(`${MODEL_URL_PREFIX}${shardPath}`, 'GET', { 'If-None-Match': shard.headers.etag! })).status, 304);
  shardRequests = shardsBefore; // these were the test's, not the tab's
  for (const hidden of ['model.onnx', 'model.onnx.json', '..%2fmanifest.json', '']) {
    assert.equal((await raw(`${MODEL_URL_PREFIX}${hidden}`)).status, 404, hidden);
  }
});

let firstPage: TrackedPage;

/** The paths of the models TF.js keeps in this origin's IndexedDB. */
async function cachedModels(page: TrackedPage): Promise<string[]> {
  return page.page.evaluate(
    () =>
      new Promise<string[]>((resolve, reject) => {
        const open = indexedDB.open('tensorflowjs', 1);
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const keys = open.result.transaction('model_info_store').objectStore('model_info_store').getAllKeys();
          keys.onsuccess = () => resolve((keys.result as string[]).sort());
          keys.onerror = () => reject(keys.error);
        };
      }),
  );
}

/** Plants an older cached model, as a previous version of the hub would have left it. */
async function plantOldModel(page: TrackedPage, modelPath: string): Promise<void> {
  await page.page.evaluate(
    (modelPath) =>
      new Promise<void>((resolve, reject) => {
        const open = indexedDB.open('tensorflowjs', 1);
        open.onupgradeneeded = () => {
          open.result.createObjectStore('models_store', { keyPath: 'modelPath' });
          open.result.createObjectStore('model_info_store', { keyPath: 'modelPath' });
        };
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const tx = open.result.transaction(['models_store', 'model_info_store'], 'readwrite');
          const info = { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: 4 };
          tx.objectStore('model_info_store').put({ modelPath, modelArtifactsInfo: info });
          tx.objectStore('models_store').put({ modelPath, modelArtifacts: { modelTopology: {}, weightSpecs: [], weightData: new ArrayBuffer(4) } });
          tx.oncomplete = () => {
            open.result.close();
            resolve();
          };
          tx.onerror = () => reject(tx.error);
        };
      }),
    modelPath,
  );
}

test('the tab runs the model on WebGPU and answers a job as the CPU reference does', { timeout: LOAD_TIMEOUT_MS + 60_000 }, async () => {
  firstPage = await browser.newPage();
  // An older model left in this browser by an earlier version of the hub: it must be deleted.
  // (Planted from the volunteer page before it is started: same origin, and it connects to nothing yet.)
  await firstPage.page.goto(`${base}/volunteer`);
  const oldModel = `resnet-hub-${'0'.repeat(64)}`;
  await plantOldModel(firstPage, oldModel);
  assert.deepEqual(await cachedModels(firstPage), [oldModel]);

  const started = Date.now();
  await firstPage.page.goto(`${base}/volunteer?autostart=1`);
  const connection = await hub.nextConnection();
  const hello = await connection.next('hello', LOAD_TIMEOUT_MS);
  const loadMs = Date.now() - started;

  assert.equal(hello.protocol, VOLUNTEER_PROTOCOL_VERSION);
  assert.equal(hello.backend, 'webgpu');
  assert.ok(hello.adapter && (hello.adapter.vendor || hello.adapter.architecture || hello.adapter.description), 'the adapter is reported');
  assert.equal(hello.model_sha256, sha256);
  assert.ok(hello.per_image_ms > 0);
  // 4 (the hub's max) once batch shaders are compiled; 1 where the GPU compiles too slowly for that.
  assert.ok(hello.max_batch === 4 || hello.max_batch === 1, `max_batch ${hello.max_batch}`);
  assert.ok(hello.user_agent?.includes('Chrome'));
  assert.equal(shardRequests, 1, 'the model was downloaded once');

  const ready = await volunteerState(firstPage);
  assert.equal(ready.state, 'ready');
  assert.equal(ready.backend, 'webgpu');
  assert.equal(ready.modelSource, 'download');
  assert.equal(ready.volunteerId, 'v-1');
  assert.deepEqual(await cachedModels(firstPage), [`resnet-hub-${sha256}`], 'the new model is cached, the old one deleted');
  assert.equal(await firstPage.page.getAttribute('body', 'data-state'), 'ready');

  connection.sendJob(7, images);
  const result = await connection.next('result', 60_000);
  assert.equal(result.job_id, 7);
  assertMatchesReference(result, 'webgpu');
  assert.ok(result.compute_ms > 0);

  // Malformed input is refused, reported, and does not break the session.
  connection.socket.send(JSON.stringify({ type: 'welcome', protocol: 99 }));
  await firstPage.page.waitForFunction(() => /invalid message/.test(window.volunteerState.lastError ?? ''));
  const truncated = encodeJobFrame(11, [images[0]], 224, 224).subarray(0, 1000);
  connection.socket.send(truncated, { binary: true });
  const failed = await connection.next('job_failed');
  assert.equal(failed.job_id, 11);
  assert.match(failed.message, /bytes, expected/);
  await firstPage.page.evaluate(() => {
    window.volunteerState.lastError = null;
  });

  await firstPage.page.waitForFunction(() => window.volunteerState.jobsDone === 1);
  const done = await volunteerState(firstPage);
  assert.equal(done.imagesDone, 2);
  assert.ok(done.perImageMs !== null && done.perImageMs > 0);
  assert.equal(done.lastError, null);
  assert.deepEqual(connection.invalid, [], 'every message from the tab is valid');
  await waitFor(() => (connection.heartbeats > 0 ? true : undefined), () => {}, 3 * HEARTBEAT_MS, 'the tab sends heartbeats');
  console.log(
    `# ${hello.backend} on ${JSON.stringify(hello.adapter)}: ready in ${loadMs} ms (first run ${Math.round(done.firstRunMs ?? 0)} ms), ` +
      `warm-up ${hello.per_image_ms.toFixed(1)} ms/image, max_batch ${hello.max_batch}, job ${result.compute_ms.toFixed(1)} ms for 2 images`,
  );
});

test('after a reload the model comes from IndexedDB, not from the hub', { timeout: LOAD_TIMEOUT_MS }, async () => {
  const before = shardRequests;
  // Reloaded as a tab that takes one image per job: batches were tested above, and it then
  // skips compiling their shaders again.
  await firstPage.page.goto(`${base}/volunteer?autostart=1&max_batch=1`);
  const connection = await hub.nextConnection();
  const hello = await connection.next('hello', LOAD_TIMEOUT_MS);
  assert.equal(hello.backend, 'webgpu');
  assert.equal(hello.max_batch, 1, 'the tab offers what its URL asks');
  assert.equal(shardRequests, before, 'no weight shard was requested again');
  assert.equal((await volunteerState(firstPage)).modelSource, 'cache');

  connection.sendJob(8, images.slice(0, 1));
  assertMatchesReference(await connection.next('result', 60_000), 'webgpu from cache', 1);

  // Stop (from the keyboard): the tab says bye, closes and frees the GPU.
  await firstPage.page.focus('#stop');
  await firstPage.page.keyboard.press('Enter');
  await connection.next('bye');
  await connection.waitClosed();
  await waitForState(firstPage, 'stopped');
  await firstPage.page.close();
});

test('?fault=wrong answers a different top-1; stop and silence make it reconnect, quarantine stops it', { timeout: LOAD_TIMEOUT_MS + 60_000 }, async () => {
  const page = await browser.newPage();
  const before = shardRequests;
  await page.page.goto(`${base}/volunteer?autostart=1&fault=wrong&token=s3cr%C3%A9t&max_batch=1`);
  let connection = await hub.nextConnection();
  assert.equal(new URL(connection.url, base).searchParams.get('token'), 's3crét', 'the token is passed on to the hub');
  await connection.next('hello', LOAD_TIMEOUT_MS);
  assert.equal(shardRequests, before, 'the cached model is used');
  assert.equal(await page.page.isVisible('#fault-banner'), true, 'the page says it is in test mode');

  connection.sendJob(9, images.slice(0, 1));
  const wrong = await connection.next('result', 60_000);
  assert.notEqual(wrong.indices[0][0], reference[0].indices[0], 'top-1 should be wrong');

  // The hub is stopping: the tab closes and comes back (after 2–4 s of backoff).
  connection.send({ type: 'stop', reason: 'hub restarting' });
  await connection.waitClosed();
  await waitForState(page, 'reconnecting');
  connection = await hub.nextConnection(15_000);
  const hello = await connection.next('hello', LOAD_TIMEOUT_MS);
  assert.equal(hello.model_sha256, sha256);
  assert.equal((await volunteerState(page)).modelSource, 'memory', 'the worker kept its model across the reconnection');

  // A hub that goes silent (no heartbeats, nothing) is declared dead after 3 × heartbeat_ms.
  const silentSince = Date.now();
  connection.silent = true;
  await connection.waitClosed(3 * HEARTBEAT_MS + 5_000);
  const deadAfter = Date.now() - silentSince;
  assert.ok(deadAfter >= 3 * HEARTBEAT_MS - 500, `declared dead after only ${deadAfter} ms`);
  assert.match((await volunteerState(page)).lastError ?? '', /nothing from the hub/);
  connection = await hub.nextConnection(15_000);
  await connection.next('hello', LOAD_TIMEOUT_MS);

  // Quarantined: the tab stops for good and says why.
  connection.send({ type: 'quarantined', reason: 'wrong answers on verification' });
  await connection.waitClosed();
  await waitForState(page, 'quarantined');
  const state = await volunteerState(page);
  assert.equal(state.lastError, 'wrong answers on verification');
  assert.match((await page.page.textContent('#problem')) ?? '', /quarantined this tab: wrong answers on verification/);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.equal(hub.untaken, 0, 'no reconnection after quarantine');
  await page.page.close();
});

test('no console errors or page errors in any page', () => {
  assert.deepEqual(browser.problems(), []);
});
