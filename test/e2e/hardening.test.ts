/**
 * Production hardening on the real hub (real ZeroMQ on loopback, real worker threads, the
 * generated ResNet50 on ONNX Runtime): a bounded queue that refuses fast under 64 clients,
 * deadlines that keep expired work off the engine, a drain on SIGTERM in the middle of a load
 * run, Prometheus metrics, and the API token.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from 'node:net';
import WebSocket from 'ws';
import * as zmq from 'zeromq';
import { percentile } from '../../shared/stats.ts';
import type { StatusReport } from '../../shared/protocol/status.ts';
import { launchChromium } from '../../kit/browser.ts';
import { codeOf, countBy, runClosedLoop } from '../../kit/closed-loop.ts';
import { TEST_MODEL_DIR } from '../../kit/paths.ts';
import { launchHub } from '../../kit/hub-process.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import { dealerRequest, expectError, expectSuccess, payloadOf, photo } from '../../kit/zmq-clients.ts';

/** One single-threaded worker, no solo mode: a steady, known service time. */
const ONE_WORKER = ['--engine', 'onnx', '--workers', '1', '--threads-per-worker', '1', '--solo-threads', '0'];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function status(hub: HubProcess): Promise<StatusReport> {
  return (await (await fetch(`${hub.http}/api/status`)).json()) as StatusReport;
}

/** Images the local workers' engines have been given so far. */
async function engineImages(hub: HubProcess): Promise<number> {
  return (await status(hub)).executors.reduce((sum, worker) => sum + worker.images, 0);
}

/** Median end-to-end time of a lone request: the service time the bounds are derived from. */
async function serviceTimeMs(hub: HubProcess, body: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 7; i++) times.push(expectSuccess((await dealerRequest(hub.zmq, body)).reply).timing.total_ms);
  return percentile(times, 50);
}

test('overload: 64 closed-loop clients against --max-queue 8: every request answered, fast refusals, bounded latency', async () => {
  const maxQueue = 8;
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: [...ONE_WORKER, '--max-queue', String(maxQueue)] });
  try {
    const body = (id: string) => payloadOf(photo('chelsea'), { request_id: id });
    const serviceMs = await serviceTimeMs(hub, body('warm'));
    const started = performance.now();
    const exchanges = await runClosedLoop({ endpoint: hub.zmq, clients: 64, body, until: sleep(8000), overloadBackoffMs: 20, replyTimeoutMs: 30_000 });
    const loadSeconds = (performance.now() - started) / 1000;

    const outcomes = countBy(exchanges, (e) => codeOf(e.reply));
    console.log(`# overload: ${exchanges.length} requests, ${JSON.stringify(outcomes)}, service time ${serviceMs.toFixed(1)} ms`);
    assert.equal(outcomes.lost, undefined, 'no request lost');
    assert.deepEqual(Object.keys(outcomes).sort(), ['ok', 'overloaded'], 'every reply is a result or overloaded');
    for (const e of exchanges) assert.equal(e.reply && 'request_id' in e.reply ? e.reply.request_id : undefined, e.requestId, 'replies match requests');

    const accepted = exchanges.filter((e) => codeOf(e.reply) === 'ok').map((e) => e.repliedAt! - e.sentAt);
    const refused = exchanges.filter((e) => codeOf(e.reply) === 'overloaded').map((e) => e.repliedAt! - e.sentAt);
    // An accepted request waits behind at most max-queue others plus the one running, at the rate
    // the hub served them; twice that covers timing noise. The rate is the one measured under this
    // load, so the bound follows the CPU the hub really had (the tests share two cores with other
    // work); an unbounded queue would wait some 7 times as long with 64 clients.
    const servedPerSecond = accepted.length / loadSeconds;
    const bound = (2 * (maxQueue + 1) * 1000) / servedPerSecond + 250;
    const p99 = percentile(accepted, 99);
    console.log(`# overload: ${servedPerSecond.toFixed(1)} served a second; accepted p50 ${percentile(accepted, 50).toFixed(0)} ms, p99 ${p99.toFixed(0)} ms (bound ${bound.toFixed(0)} ms); refused p99 ${percentile(refused, 99).toFixed(1)} ms`);
    assert.ok(accepted.length >= 20, `enough accepted requests to judge (${accepted.length})`);
    assert.ok(p99 <= bound, `accepted p99 ${p99.toFixed(0)} ms within ${bound.toFixed(0)} ms`);
    // A refusal that waited in the queue would take as long as an admitted request does.
    assert.ok(percentile(refused, 99) < Math.max(250, serviceMs * 2, percentile(accepted, 50)), 'refusals come at once, not after a wait');
    assert.equal(hub.child.exitCode, null, 'the hub is still running');
    expectSuccess((await dealerRequest(hub.zmq, body('after'))).reply);
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('deadlines: short-deadline requests under load get timeout and never reach the engine; a running one is answered at its deadline', async () => {
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: [...ONE_WORKER, '--max-queue', '1000'] });
  try {
    const serviceMs = await serviceTimeMs(hub, payloadOf(photo('coffee')));
    const before = await engineImages(hub);
    const socket = new zmq.Dealer({ receiveTimeout: 60_000, linger: 0 });
    socket.connect(hub.zmq);
    // Work for several service times ahead of the short-deadline requests.
    const load = 6;
    for (let i = 0; i < load; i++) await socket.send(payloadOf(photo('coffee'), { request_id: `load-${i}` }));
    const short = 20;
    for (let i = 0; i < short; i++) await socket.send(payloadOf(photo('camera'), { request_id: `short-${i}`, deadline_ms: Math.max(20, serviceMs / 2) }));
    const replies = new Map<string, ReturnType<typeof JSON.parse>>();
    for (let i = 0; i < load + short; i++) {
      const reply = JSON.parse((await socket.receive())[0].toString());
      replies.set(reply.request_id, reply);
    }
    socket.close();
    for (let i = 0; i < load; i++) expectSuccess(replies.get(`load-${i}`));
    for (let i = 0; i < short; i++) assert.equal(expectError(replies.get(`short-${i}`)).error.code, 'timeout');
    assert.equal(await engineImages(hub), before + load, 'the engine saw only the requests without a deadline');

    // On an idle hub, a deadline shorter than the inference: answered timeout at the deadline,
    // the engine did run it, and the late result is dropped (no second reply).
    const deadline = Math.max(10, serviceMs / 3);
    const lone = new zmq.Dealer({ receiveTimeout: 5000, linger: 0 });
    lone.connect(hub.zmq);
    const beforeLone = await engineImages(hub);
    const sentAt = performance.now();
    await lone.send(payloadOf(photo('rocket'), { request_id: 'lone', deadline_ms: deadline }));
    const reply = JSON.parse((await lone.receive())[0].toString());
    const tookMs = performance.now() - sentAt;
    assert.equal(expectError(reply).error.code, 'timeout');
    assert.ok(tookMs < deadline + serviceMs, `answered at its deadline (${tookMs.toFixed(0)} ms, deadline ${deadline.toFixed(0)} ms)`);
    lone.receiveTimeout = serviceMs * 3 + 500;
    await assert.rejects(lone.receive(), 'no second reply when the late result arrives');
    lone.close();
    assert.equal(await engineImages(hub), beforeLone + 1, 'it was running when its deadline passed');
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('--default-deadline-ms applies to requests without deadline_ms', async () => {
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: [...ONE_WORKER, '--default-deadline-ms', '1'] });
  try {
    assert.equal(expectError((await dealerRequest(hub.zmq, payloadOf(photo('chelsea')))).reply).error.code, 'timeout');
    expectSuccess((await dealerRequest(hub.zmq, payloadOf(photo('chelsea'), { deadline_ms: 60_000 }))).reply);
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('drain: SIGTERM in the middle of a load run: everything sent before it is answered (result or shutting_down), readiness 503 at once, exit 0', async () => {
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: ['--engine', 'onnx', '--workers', '2'] });
  let signalledAt = Infinity;
  let readyAfterSignal: number | undefined;
  let readyTurnedAfterMs = Infinity;
  const signal = sleep(2000).then(async () => {
    signalledAt = performance.now();
    hub.child.kill('SIGTERM');
    // The signal reaches the hub asynchronously: readiness must turn within moments, while the
    // requests in flight are still being answered.
    for (let tries = 0; tries < 20; tries++) {
      readyAfterSignal = (await fetch(`${hub.http}/readyz`)).status;
      if (readyAfterSignal === 503) break;
      await sleep(10);
    }
    readyTurnedAfterMs = performance.now() - signalledAt;
  });
  const exchanges = await runClosedLoop({
    endpoint: hub.zmq,
    clients: 8,
    body: (id) => payloadOf(photo('astronaut'), { request_id: id }),
    until: hub.exited,
    // Requests sent after the exit wait this long for nothing; the drain answers the rest in moments.
    replyTimeoutMs: 6000,
  });
  await signal;
  assert.equal(await hub.exited, 0, 'exit code 0');
  assert.equal(readyAfterSignal, 503, 'readiness turned 503');
  assert.ok(readyTurnedAfterMs < 500, `at once (${readyTurnedAfterMs.toFixed(0)} ms after the signal)`);
  const beforeSignal = exchanges.filter((e) => e.sentAt < signalledAt);
  const outcomes = countBy(beforeSignal, (e) => codeOf(e.reply));
  console.log(`# drain: ${beforeSignal.length} requests sent before SIGTERM: ${JSON.stringify(outcomes)}`);
  assert.ok(beforeSignal.length > 8, 'the load was running');
  for (const e of beforeSignal) assert.ok(['ok', 'shutting_down'].includes(codeOf(e.reply)), `${e.requestId}: ${codeOf(e.reply)}`);
  assert.ok((outcomes.ok ?? 0) >= 8, 'the requests in flight got results');
});

test('GET /metrics: Prometheus text with requests, latencies, batches, queue and executors', async () => {
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: ['--engine', 'onnx', '--workers', '1'] });
  try {
    expectSuccess((await dealerRequest(hub.zmq, payloadOf(photo('coffee')))).reply);
    expectError((await dealerRequest(hub.zmq, JSON.stringify({ payload: 'bm90IGFuIGltYWdl' }))).reply);
    const response = await fetch(`${hub.http}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /text\/plain/);
    const text = await response.text();
    const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1]);
    assert.equal(value(/^resnet_hub_requests_total\{outcome="ok",executor_kind="local"\} (\d+)/m), 1, 'our request, by outcome and executor kind');
    assert.equal(value(/^resnet_hub_requests_total\{outcome="unsupported_image",executor_kind="none"\} (\d+)/m), 1);
    assert.ok(value(/^resnet_hub_request_duration_seconds_count\{executor_kind="local"\} (\d+)/m) >= 1);
    assert.ok(value(/^resnet_hub_inference_seconds_sum\{executor_kind="local"\} ([\d.e-]+)/m) > 0);
    assert.ok(value(/^resnet_hub_queue_seconds_count\{executor_kind="local"\} (\d+)/m) >= 1);
    assert.ok(value(/^resnet_hub_batch_size_bucket\{le="1",executor_kind="local"\} (\d+)/m) >= 1);
    assert.equal(value(/^resnet_hub_queue_depth (\d+)/m), 0);
    assert.equal(value(/^resnet_hub_executors\{kind="local",state="ready"\} (\d+)/m), 1);
    assert.equal(value(/^resnet_hub_volunteer_verifications_total\{verdict="disagreed"\} (\d+)/m), 0, 'present before any volunteer');
    assert.equal(value(/^resnet_hub_volunteer_events_total\{event="quarantined"\} (\d+)/m), 0);
    assert.ok(value(/^process_resident_memory_bytes (\d+)/m) > 100 * 1024 * 1024);
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('--api-token guards the HTTP API, /metrics and /ws/events; probes and the web app stay open', async () => {
  const token = 'a-long-enough-test-token';
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: ['--engine', 'onnx', '--workers', '1', '--api-token', token] });
  try {
    const bearer = { Authorization: `Bearer ${token}` };
    for (const path of ['/api/status', '/metrics']) {
      const refused = await fetch(`${hub.http}${path}`);
      assert.equal(refused.status, 401, `${path} without the token`);
      assert.match(refused.headers.get('www-authenticate') ?? '', /Bearer/);
      assert.equal((await fetch(`${hub.http}${path}`, { headers: { Authorization: 'Bearer wrong-token-value' } })).status, 401);
      assert.equal((await fetch(`${hub.http}${path}`, { headers: bearer })).status, 200, `${path} with the token`);
    }
    const image = new Uint8Array(photo('chelsea'));
    assert.equal((await fetch(`${hub.http}/api/classify`, { method: 'POST', body: image, headers: { 'Content-Type': 'image/jpeg' } })).status, 401);
    assert.equal((await fetch(`${hub.http}/api/classify`, { method: 'POST', body: image, headers: { 'Content-Type': 'image/jpeg', ...bearer } })).status, 200);
    for (const path of ['/healthz', '/readyz', '/']) assert.equal((await fetch(`${hub.http}${path}`)).status, 200, `${path} is open`);

    const open = (query: string) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(`${hub.http.replace('http', 'ws')}/ws/events${query}`);
        socket.once('open', () => {
          socket.close();
          resolve(101);
        });
        socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
        socket.once('error', () => resolve(0));
      });
    assert.equal(await open(''), 401, 'event stream without the token');
    assert.equal(await open(`?token=${token}`), 101, 'event stream with it');

    // The web UI opened with ?api_token= uses it for its event stream and its uploads.
    const browser = await launchChromium();
    try {
      const tab = await browser.newPage();
      await tab.page.goto(`${hub.http}/?api_token=${token}`);
      await tab.page.waitForSelector('#live-badge[data-state="live"]', { timeout: 30_000 });
      await tab.page.setInputFiles('#file-input', [{ name: 'chelsea.jpg', mimeType: 'image/jpeg', buffer: photo('chelsea') }]);
      await tab.page.waitForSelector('.result-card[data-state="done"]', { timeout: 30_000 });
      const dashboardLink = await tab.page.$eval('.site-nav a[href^="/dashboard"]', (a) => a.getAttribute('href'));
      assert.equal(dashboardLink, `/dashboard?api_token=${token}`, 'navigation keeps the token');
      assert.deepEqual(tab.problems, []);
    } finally {
      await browser.close();
    }
    expectSuccess((await dealerRequest(hub.zmq, payloadOf(photo('chelsea')))).reply);
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('drain edge cases: a burst sent just before SIGTERM is answered with its ids; a connection that never sent a request does not hold the exit', { timeout: 90_000 }, async () => {
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: ['--engine', 'onnx', '--workers', '1'] });
  const idle = connect(Number(new URL(hub.http).port), '127.0.0.1'); // as browsers pre-open them
  await new Promise((resolve) => idle.once('connect', resolve));
  const connected: Array<Promise<void>> = [];
  const sockets = Array.from({ length: 8 }, () => {
    const socket = new zmq.Dealer({ receiveTimeout: 15_000, linger: 0 });
    connected.push(new Promise((resolve) => socket.events.on('connect', () => resolve())));
    socket.connect(hub.zmq);
    return socket;
  });
  try {
    // Connected first: a message still waiting client-side for its TCP connection when the hub
    // closes never reached the hub, and no server can answer that.
    await Promise.all(connected);
    await Promise.all(sockets.map((socket, i) => socket.send(payloadOf(photo('coffee'), { request_id: `burst-${i}` }))));
    hub.child.kill('SIGTERM');
    const replies = await Promise.all(sockets.map(async (socket) => JSON.parse((await socket.receive())[0].toString())));
    assert.deepEqual(replies.map((r) => r.request_id), sockets.map((_, i) => `burst-${i}`), 'every reply names its request');
    for (const reply of replies) assert.ok(reply.preds || reply.error?.code === 'shutting_down', JSON.stringify(reply.error));
    const started = performance.now();
    assert.equal(await hub.exited, 0);
    assert.ok(performance.now() - started < 5000, 'the idle connection did not hold the exit');
  } finally {
    for (const socket of sockets) socket.close();
    idle.destroy();
    await hub.stop();
  }
});

test('a body over --max-image-bytes still arriving gets its 413, not a broken pipe', { timeout: 90_000 }, async () => {
  const limit = 1024 * 1024;
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: ['--engine', 'onnx', '--workers', '1', '--max-image-bytes', String(limit)] });
  try {
    const body = new Uint8Array(3 * limit).fill(0xff);
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`${hub.http}/api/classify?request_id=big-${i}`, { method: 'POST', body, headers: { 'Content-Type': 'image/jpeg' } });
      assert.equal(response.status, 413);
      const reply = (await response.json()) as { error: { code: string }; request_id?: string };
      assert.equal(reply.error.code, 'payload_too_large');
      assert.equal(reply.request_id, `big-${i}`);
    }
    // Far too large: refused and closed without reading it all (the client may see either).
    const huge = new Uint8Array(8 * limit);
    const outcome = await fetch(`${hub.http}/api/classify`, { method: 'POST', body: huge, headers: { 'Content-Type': 'image/jpeg' } }).then(
      (response) => response.status,
      () => 'connection closed',
    );
    assert.ok(outcome === 413 || outcome === 'connection closed', String(outcome));
    expectSuccess((await dealerRequest(hub.zmq, payloadOf(photo('chelsea')))).reply);
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});
