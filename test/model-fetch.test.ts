/**
 * `npm run model:fetch` and the first start's fetch, against a real HTTP server on loopback
 * that serves a small file and misbehaves on cue: progress, resume (after a dropped or stalled
 * connection, and from an earlier run's .part), retries with backoff, md5 refused, offline
 * detected fast, and the hub's fallback to the untrained model.
 * Run: node --import tsx --test test/model-fetch.test.ts
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';

import { downloadFile, partFileOf, type DownloadEvent } from '../models/tools/fetch/download.ts';
import { DownloadError } from '../models/tools/fetch/download-error.ts';
import { backoffDelay } from '../models/tools/fetch/backoff.ts';
import { parseContentRange } from '../models/tools/fetch/content-range.ts';
import { cacheFileFor, downloadImagenetWeights, fetchImagenetWeights, KERAS_RESNET50_URL } from '../models/tools/fetch/keras-weights.ts';
import { loadLayersModelFromStore, MANIFEST_JSON, readManifest, type ModelManifest } from '../models/tools/store.ts';
import { loadTfjs } from '../lib/tfjs-runtime.ts';
import { ARCHITECTURES, buildResNet } from '../shared/model/resnet50.ts';
import { ensureModel, fetchImagenetOrExplain } from '../server/model-bootstrap.ts';
import { parseConfig } from '../server/config.ts';
import { closedPort, seededBytes, startFileServer, type FileServer } from './support/file-server.ts';
import { distinctValues, kerasLayersOf, PYTHON, writeKerasH5 } from './support/keras-h5.ts';
import { REPO_ROOT } from './support/paths.ts';

const MiB = 1024 * 1024;
/** Debian's Python (CI installs it with python3-h5py), as keras-h5.ts runs it. */
const python = spawnSync(PYTHON, ['-c', 'pass']).status === 0;
const h5py = python && spawnSync(PYTHON, ['-c', 'import h5py']).status === 0;
const BODY = seededBytes(3 * MiB + 4321);
const BODY_MD5 = md5(BODY);
/** Retries in tests wait milliseconds, not seconds. */
const FAST = { retryBaseMs: 20, retryMaxMs: 200 };

function md5(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

let server: FileServer;
let tmp: string;
let counter = 0;
/** A fresh path in the temp folder for each download. */
const freshDest = () => path.join(tmp, `dl-${++counter}`, 'weights.h5');

before(async () => {
  server = await startFileServer(BODY);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'model-fetch-'));
});
after(async () => {
  await server.close();
  await rm(tmp, { recursive: true, force: true });
});

/** Each test starts with a server that behaves and an empty request log. */
function resetServer(): void {
  server.requests.length = 0;
  server.faults.length = 0;
}

function assertMonotone(progress: Array<[number, number | undefined]>): void {
  for (let i = 1; i < progress.length; i++) {
    assert.ok(progress[i][0] >= progress[i - 1][0], `progress went back from ${progress[i - 1][0]} to ${progress[i][0]} at ${i}`);
  }
}

const fakeManifest = (weights: 'untrained' | 'imagenet'): ModelManifest => ({
  formatVersion: 1,
  name: 'resnet50',
  weights,
  weightsSha256: 'a'.repeat(64),
  source: weights === 'untrained' ? { kind: 'generated', seed: 1, generator: 'test' } : { kind: 'keras-h5', url: 'http://example.invalid/x.h5' },
  createdAt: new Date(0).toISOString(),
  inputShape: [224, 224, 3],
  classes: 1000,
});

/** A folder that readManifest takes for a store (only the manifest matters to the code under test). */
async function fakeStore(weights: 'untrained' | 'imagenet'): Promise<{ dir: string; manifestText: string }> {
  const dir = path.join(tmp, `store-${++counter}`);
  await mkdir(dir, { recursive: true });
  const manifestText = JSON.stringify(fakeManifest(weights), null, 2) + '\n';
  await writeFile(path.join(dir, MANIFEST_JSON), manifestText);
  return { dir, manifestText };
}

function captureLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

describe('downloadFile', () => {
  test('downloads the whole file with monotone progress ending at the total, and checks its md5', async () => {
    resetServer();
    const dest = freshDest();
    const progress: Array<[number, number | undefined]> = [];
    const result = await downloadFile(server.url(), dest, { md5: BODY_MD5, onProgress: (done, total) => progress.push([done, total]) });

    assert.deepEqual(await readFile(dest), Buffer.from(BODY));
    assert.equal(result.md5, BODY_MD5);
    assert.equal(result.bytes, BODY.byteLength);
    assert.equal(result.attempts, 1);
    assert.ok(progress.length > 2, `several progress callbacks (${progress.length})`);
    assertMonotone(progress);
    assert.deepEqual(progress.at(-1), [BODY.byteLength, BODY.byteLength]);
    assert.ok(progress.every(([, total]) => total === BODY.byteLength), 'the total is known from the start');
    assert.equal(existsSync(partFileOf(dest)), false, 'no .part left');
    assert.deepEqual(server.requests.map((r) => [r.range, r.status]), [[undefined, 200]]);
  });

  test('resumes with a Range request after the server drops the connection mid-body', async () => {
    resetServer();
    const dropAt = MiB + 12_345;
    server.faults.push({ type: 'drop-after', bytes: dropAt });
    const dest = freshDest();
    const progress: Array<[number, number | undefined]> = [];
    const events: DownloadEvent[] = [];
    const result = await downloadFile(server.url(), dest, {
      md5: BODY_MD5,
      ...FAST,
      onProgress: (done, total) => progress.push([done, total]),
      onEvent: (event) => events.push(event),
    });

    // The resume asks for exactly what is on disk: what the server sent before it dropped, less
    // at most what the client had buffered when the connection died.
    const resumed = events.find((e): e is Extract<DownloadEvent, { type: 'resume' }> => e.type === 'resume');
    assert.ok(resumed, `a resume was reported: ${JSON.stringify(events)}`);
    assert.ok(resumed.fromBytes > dropAt / 2 && resumed.fromBytes <= dropAt, `resumed from ${resumed.fromBytes} of ${dropAt} sent`);
    assert.deepEqual(server.requests.map((r) => [r.range, r.status]), [
      [undefined, 200],
      [`bytes=${resumed.fromBytes}-`, 206],
    ]);
    assert.equal(result.attempts, 2);
    assert.deepEqual(await readFile(dest), Buffer.from(BODY), 'byte-identical after the resume');
    assertMonotone(progress);
    assert.deepEqual(progress.at(-1), [BODY.byteLength, BODY.byteLength]);
    const retry = events.find((e) => e.type === 'retry');
    assert.ok(retry && retry.type === 'retry' && retry.error.kind === 'network', `a network retry was reported: ${JSON.stringify(events)}`);
  });

  test('resumes a .part left by an earlier run', async () => {
    resetServer();
    const dest = freshDest();
    const kept = 2 * MiB + 7;
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(partFileOf(dest), BODY.subarray(0, kept));
    const progress: Array<[number, number | undefined]> = [];
    const result = await downloadFile(server.url(), dest, { md5: BODY_MD5, onProgress: (done, total) => progress.push([done, total]) });

    assert.deepEqual(server.requests.map((r) => [r.range, r.status]), [[`bytes=${kept}-`, 206]]);
    assert.equal(result.resumedFromBytes, kept);
    assert.equal(progress[0][0], kept, 'progress starts at the bytes already there');
    assertMonotone(progress);
    assert.deepEqual(await readFile(dest), Buffer.from(BODY));
    assert.equal(existsSync(partFileOf(dest)), false);
  });

  test('a complete .part is answered 416 and only verified; a .part larger than the file starts over', async () => {
    resetServer();
    const complete = freshDest();
    await mkdir(path.dirname(complete), { recursive: true });
    await writeFile(partFileOf(complete), BODY);
    await downloadFile(server.url(), complete, { md5: BODY_MD5 });
    assert.deepEqual(server.requests.map((r) => [r.range, r.status]), [[`bytes=${BODY.byteLength}-`, 416]]);
    assert.deepEqual(await readFile(complete), Buffer.from(BODY));

    resetServer();
    const tooBig = freshDest();
    await mkdir(path.dirname(tooBig), { recursive: true });
    await writeFile(partFileOf(tooBig), seededBytes(BODY.byteLength + 10, 7));
    await downloadFile(server.url(), tooBig, { md5: BODY_MD5 });
    assert.deepEqual(server.requests.map((r) => [r.range, r.status]), [
      [`bytes=${BODY.byteLength + 10}-`, 416],
      [undefined, 200],
    ]);
    assert.deepEqual(await readFile(tooBig), Buffer.from(BODY));
  });

  test('a server that ignores Range (200) is downloaded again from the start, not appended to', async () => {
    resetServer();
    server.faults.push({ type: 'ignore-range' });
    const dest = freshDest();
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(partFileOf(dest), BODY.subarray(0, MiB));
    const events: DownloadEvent[] = [];
    await downloadFile(server.url(), dest, { md5: BODY_MD5, onEvent: (e) => events.push(e) });
    assert.deepEqual(server.requests.map((r) => [r.range, r.status]), [[`bytes=${MiB}-`, 200]]);
    assert.deepEqual(await readFile(dest), Buffer.from(BODY));
    assert.ok(events.some((e) => e.type === 'restart'));
  });

  test('a stale .part of another file fails the md5, and one whole download fixes it', async () => {
    resetServer();
    const dest = freshDest();
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(partFileOf(dest), seededBytes(MiB, 99));
    const result = await downloadFile(server.url(), dest, { md5: BODY_MD5 });
    assert.deepEqual(server.requests.map((r) => [r.range, r.status]), [
      [`bytes=${MiB}-`, 206],
      [undefined, 200],
    ]);
    assert.equal(result.md5, BODY_MD5);
    assert.deepEqual(await readFile(dest), Buffer.from(BODY));
  });

  test('refuses a file whose md5 does not match: names both md5s and leaves no file', async () => {
    resetServer();
    const dest = freshDest();
    const wrong = '0123456789abcdef0123456789abcdef';
    await assert.rejects(downloadFile(server.url(), dest, { md5: wrong }), (error: unknown) => {
      assert.ok(error instanceof DownloadError);
      assert.equal(error.kind, 'checksum');
      assert.match(error.message, new RegExp(`expected ${wrong}`));
      assert.match(error.message, new RegExp(`got ${BODY_MD5}`));
      return true;
    });
    assert.equal(existsSync(dest), false, 'no destination file');
    assert.equal(existsSync(partFileOf(dest)), false, 'no .part either');
    assert.equal(server.requests.length, 1, 'a fresh download that fails its md5 is not retried');
  });

  test('retries a 500 with backoff, then succeeds', async () => {
    resetServer();
    server.faults.push({ type: 'status', status: 500 }, { type: 'status', status: 503 });
    const dest = freshDest();
    const events: DownloadEvent[] = [];
    const started = performance.now();
    const result = await downloadFile(server.url(), dest, { md5: BODY_MD5, retryBaseMs: 100, retryMaxMs: 1000, onEvent: (e) => events.push(e) });
    const elapsed = performance.now() - started;

    assert.deepEqual(server.requests.map((r) => r.status), [500, 503, 200]);
    assert.equal(result.attempts, 3);
    const retries = events.filter((e): e is Extract<DownloadEvent, { type: 'retry' }> => e.type === 'retry');
    assert.deepEqual(retries.map((r) => [r.retry, r.error.kind, r.error.details.status]), [
      [1, 'http', 500],
      [2, 'http', 503],
    ]);
    // Equal jitter: retry n waits between half and all of base·2^(n-1).
    assert.ok(retries[0].delayMs >= 50 && retries[0].delayMs <= 100, `first delay ${retries[0].delayMs}`);
    assert.ok(retries[1].delayMs >= 100 && retries[1].delayMs <= 200, `second delay ${retries[1].delayMs}`);
    assert.ok(elapsed >= retries[0].delayMs + retries[1].delayMs, `it waited (${elapsed.toFixed(0)} ms)`);
    assert.deepEqual(await readFile(dest), Buffer.from(BODY));
  });

  test('gives up after the retries, and does not retry a 404', async () => {
    resetServer();
    server.faults.push(...Array.from({ length: 5 }, () => ({ type: 'status' as const, status: 502 })));
    await assert.rejects(downloadFile(server.url(), freshDest(), { md5: BODY_MD5, retries: 2, ...FAST }), (error: unknown) => {
      assert.ok(error instanceof DownloadError && error.kind === 'http' && error.details.status === 502);
      return true;
    });
    assert.equal(server.requests.length, 3, 'one attempt and two retries');

    resetServer();
    await assert.rejects(downloadFile(server.url('/missing.h5'), freshDest(), { md5: BODY_MD5, ...FAST }), /HTTP 404/);
    assert.equal(server.requests.length, 1);
  });

  test('a stalled connection is dropped after the idle timeout and resumed', async () => {
    resetServer();
    const stallAt = 512 * 1024;
    server.faults.push({ type: 'stall-after', bytes: stallAt });
    const dest = freshDest();
    const started = performance.now();
    await downloadFile(server.url(), dest, { md5: BODY_MD5, idleTimeoutMs: 300, ...FAST });
    assert.ok(performance.now() - started < 5000);
    assert.deepEqual(server.requests.map((r) => [r.range, r.status]), [
      [undefined, 200],
      [`bytes=${stallAt}-`, 206],
    ]);
    assert.deepEqual(await readFile(dest), Buffer.from(BODY));
  });

  test('follows redirects', async () => {
    resetServer();
    server.faults.push({ type: 'redirect', location: '/mirror/x.h5' }, { type: 'redirect', location: server.url() });
    const dest = freshDest();
    await downloadFile(server.url('/x.h5'), dest, { md5: BODY_MD5 });
    assert.deepEqual(server.requests.map((r) => [r.path, r.status]), [
      ['/x.h5', 302],
      ['/mirror/x.h5', 302],
      ['/weights.h5', 200],
    ]);
    assert.deepEqual(await readFile(dest), Buffer.from(BODY));
  });

  test('aborting keeps the .part for a later resume', async () => {
    resetServer();
    server.faults.push({ type: 'stall-after', bytes: 256 * 1024 });
    const dest = freshDest();
    const abort = new AbortController();
    const done = downloadFile(server.url(), dest, {
      md5: BODY_MD5,
      signal: abort.signal,
      onProgress: (bytes) => {
        if (bytes >= 256 * 1024) abort.abort();
      },
    });
    await assert.rejects(done, (error: unknown) => error instanceof DownloadError && error.kind === 'aborted');
    assert.equal((await readFile(partFileOf(dest))).byteLength, 256 * 1024);
    assert.equal(existsSync(dest), false);
  });

  test('a closed port is "offline" at once, without retries', async () => {
    const port = await closedPort();
    const started = performance.now();
    await assert.rejects(
      downloadFile(`http://127.0.0.1:${port}/x.h5`, freshDest(), { connectTimeoutMs: 3000, retryBaseMs: 1000 }),
      (error: unknown) => error instanceof DownloadError && error.kind === 'offline' && error.details.code === 'ECONNREFUSED',
    );
    // One refused connect, no backoff: far below one retry delay (≥ 500 ms) or the connect timeout.
    assert.ok(performance.now() - started < 500, `took ${(performance.now() - started).toFixed(0)} ms`);
  });

  test('a connect that hangs is "offline" after the connect timeout', { skip: !python && 'needs python3' }, async () => {
    // A listener that never accepts, its one-slot backlog filled: the kernel drops further
    // SYNs, so a connect hangs as it does behind a firewall that drops packets.
    const listener = spawn(PYTHON, [
      '-c',
      "import socket,time\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0); print(s.getsockname()[1], flush=True); time.sleep(60)",
    ]);
    try {
      const port = await new Promise<number>((resolve) => createInterface({ input: listener.stdout }).once('line', (l) => resolve(Number(l))));
      const { connect } = await import('node:net');
      const fillers = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
      fillers.forEach((s) => s.on('error', () => {}));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const started = performance.now();
      await assert.rejects(
        downloadFile(`http://127.0.0.1:${port}/x.h5`, freshDest(), { connectTimeoutMs: 400, retryBaseMs: 1000 }),
        (error: unknown) => error instanceof DownloadError && error.kind === 'offline' && /within 400 ms/.test(error.message),
      );
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 380 && elapsed < 1400, `gave up after ${elapsed.toFixed(0)} ms`);
      fillers.forEach((s) => s.destroy());
    } finally {
      listener.kill();
    }
  });
});

describe('the weights cache and the model store', () => {
  test('an md5 mismatch leaves the model store and the cache untouched', async () => {
    resetServer();
    const store = await fakeStore('untrained');
    const cacheDir = path.join(tmp, `cache-${++counter}`);
    const wrong = 'ffffffffffffffffffffffffffffffff';
    await assert.rejects(fetchImagenetWeights({ modelDir: store.dir, url: server.url(), md5: wrong, cacheDir }), (error: unknown) => {
      assert.ok(error instanceof DownloadError && error.kind === 'checksum');
      assert.match(error.message, new RegExp(`expected ${wrong}, got ${BODY_MD5}`));
      return true;
    });
    assert.equal(await readFile(path.join(store.dir, MANIFEST_JSON), 'utf8'), store.manifestText, 'the store is untouched');
    const file = cacheFileFor(server.url(), cacheDir);
    assert.equal(existsSync(file), false);
    assert.equal(existsSync(partFileOf(file)), false);
  });

  test('a cached file with the right md5 is used without any request; a wrong one is downloaded again', async () => {
    resetServer();
    const cacheDir = path.join(tmp, `cache-${++counter}`);
    const file = cacheFileFor(server.url(), cacheDir);
    await mkdir(cacheDir, { recursive: true });
    await writeFile(file, seededBytes(1000, 5));
    const lines: string[] = [];
    const log = { info: (_: object, m: string) => lines.push(m), warn: (_: object, m: string) => lines.push(`warn: ${m}`) };
    const first = await downloadImagenetWeights({ url: server.url(), md5: BODY_MD5, cacheDir, log });
    assert.equal(server.requests.length, 1, 'the stale copy was replaced by a download');
    assert.equal(first.file, file);
    assert.equal(first.download?.md5, BODY_MD5);
    assert.deepEqual(await readFile(file), Buffer.from(BODY));
    assert.ok(lines.some((l) => l.startsWith('warn: the cached weights file has another md5')));

    resetServer();
    const second = await downloadImagenetWeights({ url: server.url(), md5: BODY_MD5, cacheDir, log });
    assert.equal(server.requests.length, 0, 'the verified copy was used');
    assert.equal(second.download, undefined);
    assert.ok(lines.includes('using the cached weights file (md5 checked)'));
  });
});

describe('download → import, end to end', () => {
  /** A Keras weights file for tiny-resnet (same layer names as ResNet50), written by h5py as Keras writes one. */
  async function writeTinyKerasH5(dir: string): Promise<{ file: string; conv1Kernel: Float32Array }> {
    const tf = await loadTfjs('cpu');
    const model = buildResNet(tf, ARCHITECTURES['tiny-resnet'], { kernelInitializer: 'zeros' });
    try {
      const layers = kerasLayersOf(model, distinctValues);
      const file = path.join(dir, 'tiny.h5');
      await writeKerasH5(file, layers);
      const conv1Kernel = layers.find((l) => l.name === 'conv1_conv')!.weights[0].values;
      return { file, conv1Kernel };
    } finally {
      model.dispose();
    }
  }

  test('a Keras .h5, resumed after a dropped connection, is imported and replaces an untrained store', { skip: !h5py && 'needs h5py (apt python3-h5py)' }, async () => {
    const dir = path.join(tmp, `keras-${++counter}`);
    await mkdir(dir, { recursive: true });
    const { file, conv1Kernel } = await writeTinyKerasH5(dir);
    const h5 = await readFile(file);
    const h5Server = await startFileServer(h5, { path: '/tiny.h5' });
    try {
      const dropAt = Math.floor(h5.byteLength / 2);
      h5Server.faults.push({ type: 'drop-after', bytes: dropAt });
      const store = await fakeStore('untrained');
      const stages: string[] = [];
      const result = await fetchImagenetWeights({
        modelDir: store.dir,
        url: h5Server.url(),
        md5: md5(h5),
        cacheDir: path.join(tmp, `cache-${++counter}`),
        architecture: 'tiny-resnet',
        ...FAST,
        onProgress: (stage) => {
          if (stages.at(-1) !== stage) stages.push(stage);
        },
      });

      assert.equal(h5Server.requests.length, 2);
      assert.match(h5Server.requests[1].range ?? '', /^bytes=\d+-$/);
      assert.equal(result.download?.md5, md5(h5));
      assert.equal(result.manifest.weights, 'imagenet');
      assert.equal(result.manifest.name, 'tiny-resnet');
      assert.equal(result.manifest.source.kind, 'keras-h5');
      assert.equal(result.manifest.source.kind === 'keras-h5' && result.manifest.source.url, h5Server.url());
      assert.deepEqual(await readManifest(store.dir), result.manifest, 'the store now holds the imported weights');
      for (const stage of ['download', 'verify', 'checking', 'reading', 'mapping', 'writing']) {
        assert.ok(stages.includes(stage), `stage ${stage} reported: ${stages.join(', ')}`);
      }

      const tf = await loadTfjs('cpu');
      const model = await loadLayersModelFromStore(tf, store.dir);
      try {
        const [kernel] = model.getLayer('conv1_conv').getWeights();
        assert.deepEqual(Array.from(kernel.dataSync()), Array.from(conv1Kernel), 'the served weights are the stored ones');
      } finally {
        model.dispose();
      }
    } finally {
      await h5Server.close();
    }
  });
});

describe('npm start with no model', () => {
  test('offline: logs that it falls back to the untrained model, and why', async () => {
    const port = await closedPort();
    const { logger, lines } = captureLogger();
    const modelDir = path.join(tmp, `empty-${++counter}`);
    const cacheDir = path.join(tmp, `cache-${++counter}`);
    const started = performance.now();
    const manifest = await fetchImagenetOrExplain(modelDir, logger, { enabled: true, url: `http://127.0.0.1:${port}/x.h5`, cacheDir });
    assert.equal(manifest, null);
    assert.ok(performance.now() - started < 3000, 'well within the 3 s connect timeout');
    const warning = lines.find((l) => l.level === 40);
    assert.ok(warning, `a warning was logged: ${JSON.stringify(lines)}`);
    assert.equal(warning.reason, 'offline');
    assert.match(String(warning.msg), /\(offline\); falling back to the untrained model/);
    assert.match(String(warning.msg), /npm run model:fetch/);
    assert.equal(existsSync(modelDir), false, 'no store was written');
    assert.equal(existsSync(cacheDir), false, 'not even an empty cache folder');
  });

  test('a download failure other than offline falls back too, saying what failed', async () => {
    resetServer();
    server.faults.push({ type: 'status', status: 403 });
    const { logger, lines } = captureLogger();
    const manifest = await fetchImagenetOrExplain(path.join(tmp, `empty-${++counter}`), logger, {
      enabled: true,
      url: server.url(),
      cacheDir: path.join(tmp, `cache-${++counter}`),
    });
    assert.equal(manifest, null);
    const warning = lines.find((l) => l.level === 40);
    assert.equal(warning?.reason, 'http');
    assert.match(String(warning?.msg), /HTTP 403.*falling back to the untrained model/);
  });

  test('an existing store is used as it is: no request at all', async () => {
    resetServer();
    const store = await fakeStore('untrained');
    const { logger } = captureLogger();
    const manifest = await ensureModel(store.dir, logger, { fetch: { enabled: true, url: server.url(), cacheDir: path.join(tmp, 'unused') } });
    assert.equal(manifest.weights, 'untrained');
    assert.equal(server.requests.length, 0);
  });

  test('the hub takes --model-url, --model-md5, --no-model-fetch and HUB_MODEL_FETCH', () => {
    const argv = (...flags: string[]) => ['node', 'server/main.ts', ...flags];
    const saved = process.env.HUB_MODEL_FETCH;
    try {
      delete process.env.HUB_MODEL_FETCH;
      const defaults = parseConfig(argv());
      assert.equal(defaults.modelFetch, true);
      assert.equal(defaults.modelUrl, KERAS_RESNET50_URL);
      assert.equal(parseConfig(argv('--no-model-fetch')).modelFetch, false);
      const mirror = parseConfig(argv('--model-url', 'http://127.0.0.1:9/w.h5', '--model-md5', BODY_MD5));
      assert.equal(mirror.modelUrl, 'http://127.0.0.1:9/w.h5');
      assert.equal(mirror.modelMd5, BODY_MD5);
      process.env.HUB_MODEL_FETCH = '0';
      assert.equal(parseConfig(argv()).modelFetch, false);
      process.env.HUB_MODEL_FETCH = '1';
      assert.equal(parseConfig(argv()).modelFetch, true, 'HUB_MODEL_FETCH=1 keeps it on');
      assert.equal(parseConfig(argv('--no-model-fetch')).modelFetch, false, 'the flag wins over the environment');
    } finally {
      if (saved === undefined) delete process.env.HUB_MODEL_FETCH;
      else process.env.HUB_MODEL_FETCH = saved;
    }
  });
});

describe('npm run model:fetch', () => {
  function runCli(args: string[]): Promise<{ code: number | null; stderr: string }> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'models/tools/fetch-cli.ts', ...args], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
  }

  test('an md5 mismatch exits 1 with a clear message and no stack trace', async () => {
    resetServer();
    const store = await fakeStore('untrained');
    const wrong = 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee';
    const cacheDir = path.join(tmp, `cache-${++counter}`);
    const { code, stderr } = await runCli(['--model-dir', store.dir, '--url', server.url(), '--md5', wrong, '--cache-dir', cacheDir]);
    assert.equal(code, 1, stderr);
    assert.match(stderr, new RegExp(`expected ${wrong}, got ${BODY_MD5}`));
    assert.match(stderr, /model store was not touched/);
    assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
    assert.equal(await readFile(path.join(store.dir, MANIFEST_JSON), 'utf8'), store.manifestText);
  });

  test('offline exits 1 saying so', async () => {
    const port = await closedPort();
    const { code, stderr } = await runCli(['--model-dir', path.join(tmp, `empty-${++counter}`), '--url', `http://127.0.0.1:${port}/x.h5`, '--cache-dir', path.join(tmp, `cache-${++counter}`)]);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /offline/);
    assert.doesNotMatch(stderr, /^\s+at /m);
  });

  test('an existing ImageNet store is left alone without --force, and nothing is downloaded', async () => {
    resetServer();
    const store = await fakeStore('imagenet');
    const { code, stderr } = await runCli(['--model-dir', store.dir, '--url', server.url(), '--cache-dir', path.join(tmp, `cache-${++counter}`)]);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /already holds ImageNet weights/);
    assert.equal(server.requests.length, 0);
  });
});

describe('helpers', () => {
  test('Content-Range parsing', () => {
    assert.deepEqual(parseContentRange('bytes 10-99/100'), { kind: 'range', start: 10, end: 99, total: 100 });
    assert.deepEqual(parseContentRange('bytes 10-99/*'), { kind: 'range', start: 10, end: 99, total: undefined });
    assert.deepEqual(parseContentRange('bytes */100'), { kind: 'unsatisfied', total: 100 });
    assert.equal(parseContentRange('bytes 10-100/100'), null);
    assert.equal(parseContentRange('items 1-2/3'), null);
    assert.equal(parseContentRange(undefined), null);
  });

  test('backoff doubles, is capped, and is jittered within [half, all]', () => {
    const policy = { baseMs: 100, maxMs: 1000 };
    assert.equal(backoffDelay(1, policy, () => 0), 50);
    assert.equal(backoffDelay(1, policy, () => 1), 100);
    assert.equal(backoffDelay(3, policy, () => 1), 400);
    assert.equal(backoffDelay(10, policy, () => 1), 1000);
    assert.equal(backoffDelay(10, policy, () => 0), 500);
  });
});
