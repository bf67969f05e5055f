/**
 * Volunteers at scale: 200 protocol-level peers (kit/swarm/) against a real hub under 16
 * closed-loop ZeroMQ clients, an honest swarm, then on a fresh hub a swarm where 5% go silent
 * on a job, 10% vanish mid-job, 10% fail jobs and 5% crawl at 400 ms an image, all coming back
 * as new connections. Every request must be answered once, with no error reply, and the mixed
 * swarm must keep the hub fast: before tail-tolerant scheduling it fell to a few requests a
 * second with `internal` errors. Run this short, on a two-core machine shared with the peers
 * and the clients, one run's throughput moves by ±15%, so the bars here are loose (half the
 * honest throughput, 5× its p99); issue 21's own bars (0.8×, 3×) are judged by the longer
 * `npm run soak -- --swarm 200 --clients 16 --workers 2 --model-dir models/test-resnet50`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchHub } from '../../kit/hub-process.ts';
import { TEST_MODEL_DIR } from '../../kit/paths.ts';
import { payloadOf, photo } from '../../kit/zmq-clients.ts';
import { MIXED_SWARM, type SwarmMix } from '../../kit/swarm/swarm.ts';
import { runSwarm, type SwarmRunResult } from '../../kit/swarm/swarm-run.ts';

const PEERS = 200;
const CLIENTS = 16;
const MEASURED_MS = 6000;
const MIN_THROUGHPUT_RATIO = 0.5;
const MAX_P99_RATIO = 5;

async function swarmRun(mix: SwarmMix): Promise<SwarmRunResult> {
  // The full model: local workers at ResNet50's speed, so the swarm carries most of the load.
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: ['--engine', 'onnx', '--workers', '2', '--verify-fraction', '0', '--max-volunteers', String(PEERS + 50)] });
  try {
    const image = photo('chelsea');
    const body = (id: string) => payloadOf(image, { request_id: id });
    return await runSwarm(
      { http: hub.http, zmq: hub.zmq, pid: hub.child.pid! },
      { swarm: { peers: PEERS, mix, reconnectMs: 1000, seed: 21 }, clients: CLIENTS, durationMs: MEASURED_MS, warmupMs: 2000, body },
    );
  } finally {
    assert.equal(await hub.stop(), 0, 'the hub exits 0 after the swarm');
  }
}

function describe(name: string, result: SwarmRunResult): string {
  const { load } = result;
  return `# ${name}: ${load.throughput.toFixed(0)} req/s, p50 ${load.p50Ms.toFixed(1)} ms, p99 ${load.p99Ms.toFixed(1)} ms, lost ${load.lost}, duplicates ${load.duplicates}, errors ${JSON.stringify(load.errors)}, by ${JSON.stringify(load.byExecutor)}, main thread ${result.mainCpuMsPerRequest?.toFixed(3)} ms/request, ${result.kibPerPeer?.toFixed(0)} KiB/peer`;
}

test('a swarm where some tabs go silent, vanish, fail or crawl keeps the hub fast', { timeout: 180_000 }, async () => {
  const honest = await swarmRun({});
  console.log(describe('honest', honest));
  const mixed = await swarmRun(MIXED_SWARM);
  console.log(describe('mixed', mixed));
  console.log(`# mixed swarm behaviour counts: ${JSON.stringify(mixed.swarmCounts)}`);

  for (const [name, run] of [['honest', honest], ['mixed', mixed]] as const) {
    assert.equal(run.load.lost, 0, `${name}: no request lost`);
    assert.equal(run.load.duplicates, 0, `${name}: no request answered twice`);
    assert.deepEqual(run.load.errors, {}, `${name}: no error reply while an executor could compute`);
    assert.ok((run.load.byExecutor.volunteer ?? 0) > run.load.ok / 2, `${name}: volunteers did most of the work`);
  }
  const misbehaved = mixed.swarmCounts.silent.swallowed + mixed.swarmCounts.vanish.swallowed + mixed.swarmCounts.fail.failed;
  assert.ok(misbehaved >= 10, `the mixed swarm really misbehaved (${misbehaved} jobs swallowed or failed)`);
  const throughputRatio = mixed.load.throughput / honest.load.throughput;
  const p99Ratio = mixed.load.p99Ms / honest.load.p99Ms;
  console.log(`# mixed/honest: throughput ${throughputRatio.toFixed(2)}, p99 ${p99Ratio.toFixed(2)}`);
  assert.ok(throughputRatio >= MIN_THROUGHPUT_RATIO, `mixed swarm throughput ${throughputRatio.toFixed(2)} of the honest one's (at least ${MIN_THROUGHPUT_RATIO})`);
  assert.ok(p99Ratio <= MAX_P99_RATIO, `mixed swarm p99 ${p99Ratio.toFixed(2)} × the honest one's (at most ${MAX_P99_RATIO})`);
});
