/**
 * downloadFile, against a real HTTP server on loopback that serves a small file and misbehaves
 * on cue: progress, resume (after a dropped or stalled connection, and from an earlier run's
 * .part), retries with backoff, md5 refused, offline detected fast. The weights cache, the store
 * and the hub's fallback are in model-fetch.test.ts.
 * Run: node --import tsx --test test/integration/model-download.test.ts
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { downloadFile, partFileOf, type DownloadEvent } from '../../model-tools/fetch/download.ts';
import { DownloadError } from '../../model-tools/fetch/download-error.ts';
import { closedPort, seededBytes, type FileServer } from '../support/file-server.ts';
import { PYTHON } from '../support/keras-h5.ts';
import { BODY, BODY_MD5, FAST, MiB, resetServer as resetFileServer, useFetchEnv } from '../support/fetch-env.ts';

let server: FileServer;
let tmp: string;
let counter = 0;
useFetchEnv('model-download-', (env) => ({ server, tmp } = env));
const resetServer = () => resetFileServer(server);

/** Debian's Python (CI installs it), as keras-h5.ts runs it: the offline test's listener. */
const python = spawnSync(PYTHON, ['-c', 'pass']).status === 0;
/** A fresh path in the temp folder for each download. */
const freshDest = () => path.join(tmp, `dl-${++counter}`, 'weights.h5');

function assertMonotone(progress: Array<[number, number | undefined]>): void {
  for (let i = 1; i < progress.length; i++) {
    assert.ok(progress[i][0] >= progress[i - 1][0], `progress went back from ${progress[i - 1][0]} to ${progress[i][0]} at ${i}`);
  }
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
