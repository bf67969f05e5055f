/**
 * Storms on the Open Inference gRPC front of a real hub (separate process, real HTTP/2 on
 * loopback, real worker threads): 64 clients that never back off against a queue of 8, and a
 * SIGTERM in the middle of such a load. Every call is answered once, with a result or a
 * documented refusal, and the hub lives (or, on SIGTERM, drains and exits 0).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StormLedger } from '../../kit/attackers/ledger.ts';
import { noBackoffGrpcClients } from '../../kit/attackers/grpc-attackers.ts';
import { launchHub } from '../../kit/hub-process.ts';
import { photo } from '../../kit/zmq-clients.ts';
import { OpenInferenceGrpcClient } from '../../client/open-inference-grpc-client.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const HUB_ARGS = ['--engine', 'onnx', '--workers', '2', '--max-queue', '8'];
const image = photo('chelsea');

function assertBooks(ledger: StormLedger, allowed: readonly string[], label: string): void {
  ledger.closeBooks();
  console.log(`# ${label}: ${JSON.stringify(ledger.counts)} by code ${JSON.stringify(ledger.byCode)}`);
  assert.ok(ledger.counts.sent > 0, 'the storm sent calls');
  assert.equal(ledger.counts.lost, 0, 'no call lost');
  assert.equal(ledger.counts.duplicated + ledger.counts.stray, 0);
  for (const code of Object.keys(ledger.byCode)) assert.ok(allowed.includes(code), `unexpected outcome ${code}`);
}

test('storm: 64 no-back-off gRPC clients against --max-queue 8: every call answered, a result or RESOURCE_EXHAUSTED; the hub serves on', { timeout: 120_000 }, async () => {
  const hub = await launchHub({ args: HUB_ARGS });
  try {
    const ledger = new StormLedger();
    await noBackoffGrpcClients({ address: hub.grpc, clients: 64, image, ledger, until: sleep(4000), deadlineMs: 30_000 });
    assertBooks(ledger, ['ok', 'overloaded'], 'grpc storm');
    assert.ok((ledger.byCode.ok ?? 0) > 0 && (ledger.byCode.overloaded ?? 0) > 0, 'some served, some refused');
    assert.equal(hub.child.exitCode, null, 'the hub is alive');
    const client = new OpenInferenceGrpcClient(hub.grpc);
    assert.equal((await client.infer([image])).classes.length, 1, 'and serving');
    client.close();
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('SIGTERM in the middle of a gRPC load: every call accepted is answered (a result, RESOURCE_EXHAUSTED or UNAVAILABLE while stopping), exit 0', { timeout: 120_000 }, async () => {
  const hub = await launchHub({ args: HUB_ARGS });
  const ledger = new StormLedger();
  let signalledAt = Infinity;
  const refusedBeforeSignal: string[] = [];
  const storm = noBackoffGrpcClients({
    address: hub.grpc,
    clients: 32,
    image,
    ledger,
    until: hub.exited,
    deadlineMs: 30_000,
    stopOnUnavailable: true,
    // A connection-level UNAVAILABLE (no hub code) means the call never reached a hub that took it: only after the signal.
    onSettled: (code, sentAt) => {
      if (code === 'grpc:UNAVAILABLE' && sentAt < signalledAt) refusedBeforeSignal.push(code);
    },
  });
  await sleep(1500);
  signalledAt = performance.now();
  const exit = hub.stop('SIGTERM');
  await storm;
  assert.equal(await exit, 0, 'the hub drains and exits 0');
  assertBooks(ledger, ['ok', 'overloaded', 'shutting_down', 'grpc:UNAVAILABLE'], 'grpc SIGTERM');
  assert.deepEqual(refusedBeforeSignal, [], 'no call sent before the signal lost its connection');
  assert.ok((ledger.byCode.ok ?? 0) > 0);
});
