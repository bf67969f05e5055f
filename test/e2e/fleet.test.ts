/**
 * Several hubs as one service, through the client libraries (client/): real hubs as child
 * processes on 127.0.0.1–4, real ZeroMQ. A hub SIGKILLed in the middle of a run of the classify
 * CLI (TypeScript) and of the Python module's example, a hub drained with SIGTERM under load, and
 * a fourth hub joining when the name the client resolves starts to include it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { HubClient } from '../../client/index.ts';
import type { ClassifyResult } from '../../client/index.ts';
import { largePhotos, startFleet, startFleetHub, stopFleet } from '../../kit/fleet.ts';
import type { FleetHub } from '../../kit/fleet.ts';
import { REPO_ROOT, TEST_MODEL_DIR, TINY_MODEL_DIR } from '../../kit/paths.ts';
import { photo } from '../../kit/zmq-clients.ts';

const IMAGES = 90;
const KILL_AFTER_MS = 3000;

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[]): { child: ReturnType<typeof spawn>; done: Promise<Finished> } {
  const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Finished>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every image answered with a result, exactly once, in order; how many each hub served. */
function checkLines(stdout: string, files: readonly string[]): Record<string, number> {
  const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as { file: string; preds?: string; request_id?: string; hub?: { id: string }; error?: unknown });
  assert.equal(lines.length, files.length, 'one line per image');
  const byHub: Record<string, number> = {};
  lines.forEach((line, i) => {
    assert.equal(line.file, files[i]);
    assert.equal(line.request_id, String(i), 'the caller\'s own request id, once');
    assert.ok(line.preds, `image ${i} got a result, not ${JSON.stringify(line.error)}`);
    byHub[line.hub!.id] = (byHub[line.hub!.id] ?? 0) + 1;
  });
  return byHub;
}

describe('three hubs, full model: one SIGKILLed 3 s into a run of 90 images', { timeout: 420_000 }, () => {
  let hubs: FleetHub[] = [];
  let port = '';
  let files: string[] = [];
  const endpoints = () => hubs.map((hub) => `tcp://${hub.address}:${port}`).join(',');

  before(async () => {
    ({ hubs, port } = await startFleet(3, { modelDir: TEST_MODEL_DIR }));
    const photos = await largePhotos();
    files = Array.from({ length: IMAGES }, (_, i) => photos[i % photos.length]);
  });
  after(() => stopFleet(hubs));

  /** Runs the client, SIGKILLs `victim` 3 s after the start, and checks every image got one result. */
  async function killMidRun(command: string, args: string[], victim: FleetHub, t: test.TestContext): Promise<void> {
    const started = performance.now();
    const client = run(command, args);
    await sleep(KILL_AFTER_MS);
    assert.equal(client.child.exitCode, null, 'the client was still running when the hub was killed');
    victim.child.kill('SIGKILL');
    const finished = await client.done;
    const seconds = (performance.now() - started) / 1000;
    const byHub = checkLines(finished.stdout, files);
    t.diagnostic(`${seconds.toFixed(1)} s; results by hub ${JSON.stringify(byHub)} (${victim.id} killed at 3 s); ${finished.stderr.trim()}`);
    assert.ok(Object.keys(byHub).length >= 2, 'answered by at least two hubs');
    assert.equal(finished.code, 0, finished.stderr);
    assert.equal(await victim.exited, null, 'the victim died of SIGKILL');
  }

  test('npm run classify -- --json --endpoint <three hubs>', async (t) => {
    await killMidRun('npm', ['run', '-s', 'classify', '--', '--json', '--endpoint', endpoints(), ...files], hubs[1], t);
  });

  test('the Python module (client/python), with /usr/bin/python3 and Debian\'s pyzmq', async (t) => {
    // The hub killed by the previous test comes back on its address, as a restarted pod would.
    if (hubs[1].child.exitCode !== null || hubs[1].child.signalCode !== null) hubs[1] = await startFleetHub(2, port, { modelDir: TEST_MODEL_DIR });
    await killMidRun('/usr/bin/python3', ['client/python/example.py', '--endpoint', endpoints(), ...files], hubs[2], t);
  });
});

interface Exchange {
  result: ClassifyResult;
  sentAt: number;
  doneAt: number;
}

/** `lanes` callers, each sending its next image as soon as the last is answered, until `stop` resolves. */
async function closedLoop(client: HubClient, lanes: number, stop: Promise<unknown>): Promise<Exchange[]> {
  let stopping = false;
  void stop.then(() => (stopping = true));
  const image = photo('chelsea');
  const exchanges: Exchange[] = [];
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (let n = 0; !stopping; n++) {
        const sentAt = performance.now();
        const result = await client.classify(image, { requestId: `${lane}-${n}`, deadlineMs: 30_000 });
        exchanges.push({ result, sentAt, doneAt: performance.now() });
      }
    }),
  );
  return exchanges;
}

function hubOf(exchange: Exchange): string {
  return exchange.result.ok ? exchange.result.reply.hub.id : 'error';
}

function assertAllResults(exchanges: readonly Exchange[]): void {
  const failed = exchanges.filter((e) => !e.result.ok);
  assert.deepEqual(failed.map((e) => e.result), [], 'every request got a result');
  const ids = exchanges.map((e) => (e.result.ok ? e.result.reply.request_id : undefined));
  assert.equal(new Set(ids).size, exchanges.length, 'each request answered once, with its own id');
}

function countBy(exchanges: readonly Exchange[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const exchange of exchanges) counts[hubOf(exchange)] = (counts[hubOf(exchange)] ?? 0) + 1;
  return counts;
}

describe('three hubs, small model: growth and drain', { timeout: 300_000 }, () => {
  let hubs: FleetHub[] = [];
  let port = '';

  before(async () => {
    ({ hubs, port } = await startFleet(3, { modelDir: TINY_MODEL_DIR }));
  });
  after(() => stopFleet(hubs));

  test('a fourth hub gets a share once the name the client resolves includes it', async (t) => {
    const addresses = hubs.map((hub) => hub.address);
    const resolved: string[] = [];
    const resolver = async (host: string) => {
      assert.equal(host, 'hubs.test');
      resolved.push(addresses.join(','));
      return [...addresses];
    };
    const client = new HubClient({ endpoints: `tcp://hubs.test:${port}`, resolver, resolveIntervalMs: 200 });
    let stop!: () => void;
    const loop = closedLoop(client, 6, new Promise<void>((resolve) => (stop = resolve)));
    let joinedAt = 0;
    try {
      await sleep(1000);
      const fourth = await startFleetHub(4, port, { modelDir: TINY_MODEL_DIR });
      hubs.push(fourth);
      addresses.push(fourth.address);
      joinedAt = performance.now();
      await sleep(3000);
    } finally {
      stop();
    }
    const exchanges = await loop;
    const stats = client.stats();
    await client.close();
    assertAllResults(exchanges);
    const afterJoin = exchanges.filter((e) => e.sentAt >= joinedAt + 500);
    const counts = countBy(afterJoin);
    t.diagnostic(`${exchanges.length} requests; by hub before the join ${JSON.stringify(countBy(exchanges.filter((e) => e.sentAt < joinedAt)))}, from 0.5 s after ${JSON.stringify(counts)}`);
    assert.ok(stats.hubs.some((hub) => hub.endpoint === `tcp://127.0.0.4:${port}` && hub.connected), 'the client connected to the new address');
    assert.ok((counts['hub-4'] ?? 0) >= afterJoin.length * 0.1, `hub-4 got at least a tenth of the requests after it joined: ${JSON.stringify(counts)}`);
    assert.ok(resolved.length >= 5, 'the name was resolved periodically');
  });

  test('a hub stopped with SIGTERM drains; its clients move to the others, nothing lost', async (t) => {
    const live = hubs.filter((hub) => hub.child.exitCode === null).slice(0, 3);
    const victim = live[1];
    const client = new HubClient({ endpoints: live.map((hub) => `tcp://${hub.address}:${port}`) });
    await client.ready();
    let stop!: () => void;
    const loop = closedLoop(client, 6, new Promise<void>((resolve) => (stop = resolve)));
    let termAt = 0;
    let exitedAt = 0;
    let exitCode: number | null = null;
    try {
      await sleep(1500);
      termAt = performance.now();
      victim.child.kill('SIGTERM');
      exitCode = await victim.exited;
      exitedAt = performance.now();
      await sleep(1500);
    } finally {
      stop();
    }
    const exchanges = await loop;
    const stats = client.stats();
    await client.close();
    assertAllResults(exchanges);
    const victimStats = stats.hubs.find((hub) => hub.hubId === victim.id);
    t.diagnostic(
      `${exchanges.length} requests; by hub before SIGTERM ${JSON.stringify(countBy(exchanges.filter((e) => e.doneAt < termAt)))}, ` +
        `during the drain ${JSON.stringify(countBy(exchanges.filter((e) => e.doneAt >= termAt && e.doneAt < exitedAt)))}, ` +
        `after the exit ${JSON.stringify(countBy(exchanges.filter((e) => e.doneAt >= exitedAt)))}; ` +
        `${victim.id}: refusals ${JSON.stringify(victimStats?.refusals)}, resends ${stats.resends}, exit after ${Math.round(exitedAt - termAt)} ms`,
    );
    assert.equal(exitCode, 0, 'the drained hub exits 0');
    assert.ok(victim.logs.some((entry) => entry.msg === 'stopped' && entry.drained === true), 'it answered what it had accepted');
    const afterExit = countBy(exchanges.filter((e) => e.sentAt >= exitedAt));
    assert.equal(afterExit[victim.id], undefined);
    assert.ok(Object.keys(afterExit).length === 2, `the two others carry on: ${JSON.stringify(afterExit)}`);
  });
});
