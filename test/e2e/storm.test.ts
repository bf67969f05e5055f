/**
 * Storms against a real hub (separate process, real ZeroMQ and HTTP on loopback, real worker
 * threads and model): clients that never back off, pipeline, vanish, flood HTTP, or open
 * WebSockets they never read. Each asserts that every tracked request got exactly one reply
 * (a result or a documented error code), that the hub is alive and serving afterwards, and
 * that its memory came back near where it started. Each storm lasts a few seconds; the same
 * attacks at full strength for minutes are `npm run soak -- --storm`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { percentile } from '../../shared/stats.ts';
import { readRssMiB } from '../../kit/rss-sampler.ts';
import { StormLedger } from '../../kit/attackers/ledger.ts';
import { httpAborters, httpUploaders } from '../../kit/attackers/http-attackers.ts';
import { noBackoffClients, pipelinedClients, vanishingClients } from '../../kit/attackers/zmq-attackers.ts';
import { connectAndDrop, silentPeers } from '../../kit/attackers/ws-attackers.ts';
import { launchHub } from '../../kit/hub-process.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import { TEST_MODEL_DIR, TINY_MODEL_DIR } from '../../kit/paths.ts';
import { dealerRequest, expectSuccess, photo } from '../../kit/zmq-clients.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The scenario of the report that found EBUSY: two workers, a queue of 8, ONNX Runtime. */
const TWO_WORKERS = ['--engine', 'onnx', '--workers', '2'];
const TINY = ['--engine', 'onnx', '--workers', '2', '--model-dir', TINY_MODEL_DIR];
/** Growth of the hub's RSS over a storm that still counts as "back near where it started". */
const RSS_SLACK_MIB = 160;
const image = photo('chelsea');
const base64 = image.toString('base64');
/** Built from a cached base64 text: the clients share the cores with the hub, and must not spend them re-encoding. */
const body = (id: string) => `{"payload":"${base64}","request_id":"${id}"}`;

/** Median end-to-end time of a lone request. */
async function serviceTimeMs(hub: HubProcess): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 7; i++) times.push(expectSuccess((await dealerRequest(hub.zmq, body(`lone-${i}`))).reply).timing.total_ms);
  return percentile(times, 50);
}

async function metric(hub: HubProcess, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${hub.http}/metrics`)).text();
  return Number(pattern.exec(text)?.[1] ?? NaN);
}

/** The hub's RSS once the storm's leftovers have had a moment to go. */
async function settledRssMiB(hub: HubProcess): Promise<number> {
  await sleep(1000);
  return readRssMiB(hub.child.pid!) ?? NaN;
}

/** Every tracked request answered exactly once, and only with the codes allowed. */
function assertBooks(ledger: StormLedger, allowed: readonly string[], label: string): void {
  ledger.closeBooks();
  console.log(`# ${label}: ${JSON.stringify(ledger.counts)} by code ${JSON.stringify(ledger.byCode)}${ledger.oddities.length ? ` ${ledger.oddities.join('; ')}` : ''}`);
  assert.ok(ledger.counts.sent > 0, 'the storm sent requests');
  assert.equal(ledger.counts.lost, 0, 'no request lost');
  assert.equal(ledger.counts.duplicated, 0, 'no reply twice');
  assert.equal(ledger.counts.stray, 0, 'no reply to a request never sent');
  for (const code of Object.keys(ledger.byCode)) assert.ok(allowed.includes(code), `unexpected reply code ${code}`);
}

async function assertServing(hub: HubProcess, rssBefore: number, label: string): Promise<void> {
  assert.equal(hub.child.exitCode, null, 'the hub is still running');
  expectSuccess((await dealerRequest(hub.zmq, body('after-storm'))).reply);
  assert.equal((await fetch(`${hub.http}/readyz`)).status, 200);
  const rssAfter = await settledRssMiB(hub);
  console.log(`# ${label}: hub RSS ${rssBefore.toFixed(0)} MiB before, ${rssAfter.toFixed(0)} MiB after`);
  assert.ok(rssAfter - rssBefore < RSS_SLACK_MIB, `RSS back near its start (${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MiB)`);
}

test('storm: 64 clients that resend at once after overloaded, --max-queue 8: one reply each, admitted p99 within twice what the queue bound allows at the throughput served', { timeout: 120_000 }, async () => {
  // Without solo mode, a lone request takes what one worker takes: the unit a queue is made
  // of. (Solo mode serves a lone request on every core, ~1.9× faster than any request can be
  // served under load; npm run soak -- --storm runs the default and reports both ratios.)
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: [...TWO_WORKERS, '--max-queue', '8', '--solo-threads', '0'] });
  try {
    const serviceMs = await serviceTimeMs(hub);
    const rssBefore = await settledRssMiB(hub);
    const ledger = new StormLedger();
    const started = performance.now();
    await noBackoffClients({ endpoint: hub.zmq, clients: 64, body, ledger, until: sleep(4000), replyTimeoutMs: 20_000 });
    const stormSeconds = (performance.now() - started) / 1000;
    assertBooks(ledger, ['ok', 'overloaded'], 'no back-off');
    const admitted = ledger.latencyMs.ok ?? [];
    const p99 = percentile(admitted, 99);
    // An admitted request waits behind at most the queue and the requests running: (8 + 2) at the
    // rate the hub served during the storm. The bound follows the CPU the hub really had (the tests
    // share two cores with other work), where one taken from a lone request's time did not; a queue
    // that let all 64 clients in would wait some 6 times as long.
    const queueBoundMs = ((8 + 2) / (admitted.length / stormSeconds)) * 1000;
    console.log(`# no back-off: lone service time ${serviceMs.toFixed(1)} ms; admitted ${admitted.length} in ${stormSeconds.toFixed(1)} s, p50 ${percentile(admitted, 50).toFixed(0)} ms, p99 ${p99.toFixed(0)} ms (queue bound ${queueBoundMs.toFixed(0)} ms); refused p99 ${percentile(ledger.latencyMs.overloaded ?? [0], 99).toFixed(1)} ms`);
    assert.ok(admitted.length >= 20, `enough admitted requests to judge (${admitted.length})`);
    assert.ok(p99 <= 2 * queueBoundMs, `admitted p99 ${p99.toFixed(0)} ms within twice the queue bound, ${queueBoundMs.toFixed(0)} ms`);
    await assertServing(hub, rssBefore, 'no back-off');
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('storm: 128 DEALERs with 8 requests in flight each against --max-queue 16, replies matched by request_id', { timeout: 120_000 }, async () => {
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: [...TWO_WORKERS, '--max-queue', '16'] });
  try {
    // A short round first: the baseline is the hub's memory once its allocators have met this load.
    await pipelinedClients({ endpoint: hub.zmq, clients: 128, inFlight: 8, body, ledger: new StormLedger(), until: sleep(500), replyTimeoutMs: 20_000 });
    const rssBefore = await settledRssMiB(hub);
    const ledger = new StormLedger();
    await pipelinedClients({ endpoint: hub.zmq, clients: 128, inFlight: 8, body, ledger, until: sleep(3000), replyTimeoutMs: 20_000 });
    assertBooks(ledger, ['ok', 'overloaded'], 'pipelined');
    assert.ok((ledger.byCode.ok ?? 0) > 0, 'some requests were computed');
    await assertServing(hub, rssBefore, 'pipelined');
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('storm: 300 REQ and DEALER clients send and vanish while 8 others keep working; their replies are dropped and counted', { timeout: 120_000 }, async () => {
  // A queue long enough to take every vanishing request: each is computed, and its reply dropped.
  const hub = await launchHub({ args: [...TINY, '--max-queue', '1000'] });
  try {
    // A first round, so the baseline includes what libzmq and the allocators keep once they
    // have seen hundreds of connections (measured: RSS settles after it and stays flat over 8 rounds).
    await vanishingClients({ endpoint: hub.zmq, count: 300, body, concurrency: 60 });
    const rssBefore = await settledRssMiB(hub);
    const handledBefore = await metric(hub, /^resnet_hub_requests_total\{outcome="ok",executor_kind="local"\} (\d+)/m);
    const droppedBefore = await metric(hub, /^resnet_hub_zmq_replies_dropped_total\{reason="peer_gone"\} (\d+)/m);
    const ledger = new StormLedger();
    const vanished = vanishingClients({ endpoint: hub.zmq, count: 300, body, concurrency: 60 });
    const working = noBackoffClients({ endpoint: hub.zmq, clients: 8, body, ledger, until: vanished.then(() => sleep(1000)), replyTimeoutMs: 20_000, lane: 'working' });
    const sent = await vanished;
    await working;
    assertBooks(ledger, ['ok'], 'vanishing');
    assert.equal(sent, 300);
    const handled = (await metric(hub, /^resnet_hub_requests_total\{outcome="ok",executor_kind="local"\} (\d+)/m)) - handledBefore;
    const dropped = (await metric(hub, /^resnet_hub_zmq_replies_dropped_total\{reason="peer_gone"\} (\d+)/m)) - droppedBefore;
    console.log(`# vanishing: ${sent} sent and gone; the hub computed ${handled} in all and dropped ${dropped} replies to vanished peers`);
    assert.ok(handled >= ledger.counts.answered + 200, 'the hub received and computed the vanished clients\' requests');
    assert.ok(dropped >= 200, 'their replies were dropped and counted');
    await assertServing(hub, rssBefore, 'vanishing');
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('storm: 64 concurrent HTTP uploaders with and without keep-alive, plus clients aborting mid-upload and mid-response', { timeout: 120_000 }, async () => {
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: [...TWO_WORKERS, '--max-queue', '16'] });
  try {
    const rssBefore = await settledRssMiB(hub);
    const ledger = new StormLedger();
    const until = sleep(3000);
    const [, , abortedUploads, abortedResponses] = await Promise.all([
      httpUploaders({ base: hub.http, clients: 32, image, keepAlive: true, ledger, until, replyTimeoutMs: 20_000 }),
      httpUploaders({ base: hub.http, clients: 32, image, keepAlive: false, ledger, until, replyTimeoutMs: 20_000 }),
      httpAborters(hub.http, 200, image, 'mid-upload'),
      httpAborters(hub.http, 200, image, 'mid-response'),
    ]);
    assertBooks(ledger, ['ok', 'overloaded'], 'HTTP flood');
    console.log(`# HTTP flood: statuses ${JSON.stringify(ledger.httpStatuses)}; ${abortedUploads} aborted uploads, ${abortedResponses} aborted responses`);
    assert.deepEqual(Object.keys(ledger.httpStatuses).filter((status) => status !== '200' && status !== '503'), [], 'only 200 and 503');
    assert.ok((ledger.httpStatuses['200'] ?? 0) > 0, 'some uploads were classified');
    await assertServing(hub, rssBefore, 'HTTP flood');
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('storm: event-stream and volunteer WebSockets that never read or drop at once, in hundreds, while requests run', { timeout: 120_000 }, async () => {
  const hub = await launchHub({ args: TINY });
  try {
    // A small first round: the baseline includes the buffers a crowd of sockets leaves allocated.
    (await silentPeers(hub.http, '/ws/events', 64)).close();
    (await silentPeers(hub.http, '/ws/volunteer', 100)).close();
    await connectAndDrop(hub.http, '/ws/volunteer', 100);
    const rssBefore = await settledRssMiB(hub);
    const ledger = new StormLedger();
    const until = sleep(5000);
    const load = noBackoffClients({ endpoint: hub.zmq, clients: 8, body, ledger, until, replyTimeoutMs: 20_000 });
    const silentEvents = await silentPeers(hub.http, '/ws/events', 100);
    const silentTabs = await silentPeers(hub.http, '/ws/volunteer', 150);
    const [droppedEvents, droppedTabs] = await Promise.all([connectAndDrop(hub.http, '/ws/events', 300), connectAndDrop(hub.http, '/ws/volunteer', 300)]);
    await load;
    console.log(
      `# WebSockets: silent event peers ${silentEvents.accepted} accepted / ${silentEvents.refused} refused, silent tabs ${silentTabs.accepted} / ${silentTabs.refused}; dropped ${droppedEvents} + ${droppedTabs}`,
    );
    assert.ok(silentEvents.accepted > 0 && silentTabs.accepted > 0, 'silent peers were let in (up to the caps)');
    assert.ok(silentEvents.refused > 0, 'the event stream refuses listeners past its cap');
    assertBooks(ledger, ['ok'], 'WebSockets');
    silentEvents.close();
    silentTabs.close();
    // A well-behaved page still gets its snapshot once the silent ones are gone.
    const snapshot = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`${hub.http.replace('http', 'ws')}/ws/events`, { origin: hub.http });
      ws.once('message', (data) => {
        ws.close();
        resolve(JSON.parse(data.toString()).type);
      });
      ws.once('error', reject);
    });
    assert.equal(snapshot, 'snapshot');
    await assertServing(hub, rssBefore, 'WebSockets');
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('storm: SIGTERM in the middle of pipelined, no-back-off and HTTP storms: every request sent before it is answered, exit 0', { timeout: 120_000 }, async () => {
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: [...TWO_WORKERS, '--max-queue', '16'] });
  // WebSocket peers that never read (some let in, some refused) must not hold the exit either.
  const silent = await silentPeers(hub.http, '/ws/events', 100);
  const exitedAt = hub.exited.then(() => performance.now());
  const ledger = new StormLedger();
  let signalledAt = Infinity;
  void sleep(2500).then(() => {
    signalledAt = performance.now();
    hub.child.kill('SIGTERM');
  });
  await Promise.all([
    pipelinedClients({ endpoint: hub.zmq, clients: 32, inFlight: 8, body, ledger, until: hub.exited, replyTimeoutMs: 5000 }),
    noBackoffClients({ endpoint: hub.zmq, clients: 32, body, ledger, until: hub.exited, replyTimeoutMs: 5000 }),
    httpUploaders({ base: hub.http, clients: 16, image, keepAlive: true, ledger, until: hub.exited, replyTimeoutMs: 5000 }),
  ]);
  assert.equal(await hub.exited, 0, 'exit code 0');
  const exitedAfterMs = (await exitedAt) - signalledAt;
  silent.close();
  assert.ok(exitedAfterMs < 15_000, `exited ${exitedAfterMs.toFixed(0)} ms after SIGTERM (grace 10 s)`);
  const unansweredBeforeSignal = ledger.unanswered().filter((request) => request.sentAt < signalledAt);
  assert.deepEqual(unansweredBeforeSignal.map((request) => request.id), [], 'every request sent before SIGTERM was answered');
  ledger.closeBooks();
  console.log(`# SIGTERM storm: ${JSON.stringify(ledger.counts)} ${JSON.stringify(ledger.byCode)} (requests sent after the signal may find the hub gone)`);
  assert.equal(ledger.counts.duplicated, 0);
  assert.equal(ledger.counts.stray, 0);
  for (const code of Object.keys(ledger.byCode)) assert.ok(['ok', 'overloaded', 'shutting_down'].includes(code), `unexpected reply code ${code}`);
});
