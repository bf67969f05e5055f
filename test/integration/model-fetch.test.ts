/**
 * `npm run model:fetch` and the first start's fetch, against a real HTTP server on loopback:
 * the weights cache and the store after a bad download, download → import end to end, and
 * the hub's fallback to the untrained model. downloadFile itself is in model-download.test.ts.
 * Run: node --import tsx --test test/integration/model-fetch.test.ts
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { partFileOf } from '../../model-tools/fetch/download.ts';
import { DownloadError } from '../../model-tools/fetch/download-error.ts';
import { backoffDelay } from '../../shared/backoff.ts';
import { parseContentRange } from '../../model-tools/fetch/content-range.ts';
import { cacheFileFor, downloadImagenetWeights, fetchImagenetWeights } from '../../model-tools/fetch/keras-weights.ts';
import { KERAS_RESNET50_URL } from '../../model-store/official-weights.ts';
import { loadLayersModelFromStore, MANIFEST_JSON, readManifest, type ModelManifest } from '../../model-store/store.ts';
import { loadTfjs } from '../../lib/tfjs-runtime.ts';
import { ARCHITECTURES, buildResNet } from '../../shared/model/resnet50.ts';
import { ensureModel, fetchImagenetOrExplain } from '../../server/model-bootstrap.ts';
import { parseConfig } from '../../server/config.ts';
import { closedPort, seededBytes, startFileServer, type FileServer } from '../support/file-server.ts';
import { distinctValues, kerasLayersOf, PYTHON, writeKerasH5 } from '../support/keras-h5.ts';
import { REPO_ROOT } from '../../kit/paths.ts';
import { BODY, BODY_MD5, FAST, md5, resetServer as resetFileServer, useFetchEnv } from '../support/fetch-env.ts';

/** Debian's Python (CI installs it with python3-h5py), as keras-h5.ts runs it. */
const python = spawnSync(PYTHON, ['-c', 'pass']).status === 0;
const h5py = python && spawnSync(PYTHON, ['-c', 'import h5py']).status === 0;

let server: FileServer;
let tmp: string;
let counter = 0;
useFetchEnv('model-fetch-', (env) => ({ server, tmp } = env));
const resetServer = () => resetFileServer(server);

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
    const child = spawn(process.execPath, ['--import', 'tsx', 'model-tools/fetch-cli.ts', ...args], {
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
