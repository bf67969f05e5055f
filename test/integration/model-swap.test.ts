/**
 * New weights without downtime, on a real hub (separate process, ONNX Runtime workers, the
 * full generated ResNet50): `npm run model:import` of a Keras .h5 into the store it serves,
 * under closed-loop load from 8 ZeroMQ clients; a new store the engine cannot load; SIGTERM
 * in the middle of a swap; a hub on int8, whose quantized model must follow the weights.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import * as zmq from 'zeromq';
import { int8Staleness, readInt8Sidecar } from '../../model-store/derived-files.ts';
import { int8Key } from '../../model-tools/onnx/quantize/int8-model.ts';
import { DEFAULT_QUANTIZATION } from '../../model-tools/onnx/quantize/quantize.ts';
import { MANIFEST_JSON, readManifest } from '../../model-store/store.ts';
import type { ClassifyReply, Reply } from '../../shared/protocol/classify.ts';
import type { StatusReport } from '../../shared/protocol/status.ts';
import { launchHub } from '../../kit/hub-process.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import { writeSharperClassifierH5 } from '../support/keras-h5.ts';
import { REPO_ROOT, TEST_MODEL_DIR, TINY_MODEL_DIR } from '../../kit/paths.ts';
import { dealerRequest, expectSuccess, payloadOf, photo, PHOTO_NAMES } from '../../kit/zmq-clients.ts';

const execFileAsync = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const HUB_ARGS = ['--engine', 'onnx', '--workers', '2', '--model-poll-ms', '250'];

let work: string;
/**
 * Weights B: the tiny model's with a sharper classifier, written by h5py as Keras does. The swap's
 * mechanics are the same for every model; ResNet50's own numbers after an import are
 * model-import.test.ts's.
 */
let tinyH5File: string;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'resnet-hub-swap-'));
  tinyH5File = path.join(work, 'tiny-b.h5');
  await writeSharperClassifierH5(TINY_MODEL_DIR, tinyH5File);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A store of its own for each hub: a copy of the test model (with its ONNX export, so the start is quick). */
async function copyOfTestStore(name: string, from = TEST_MODEL_DIR): Promise<string> {
  const dir = path.join(work, name);
  // dereference: the test model folder may be a symlink (a worktree), whose target must not be touched.
  await cp(from, dir, { recursive: true, dereference: true });
  return dir;
}

async function status(hub: HubProcess): Promise<StatusReport> {
  return (await (await fetch(`${hub.http}/api/status`)).json()) as StatusReport;
}

async function waitForSwapEnd(hub: HubProcess, timeoutMs = 120_000): Promise<StatusReport> {
  const giveUpAt = performance.now() + timeoutMs;
  for (;;) {
    const report = await status(hub);
    const last = report.model_swap?.history.at(-1);
    if (!report.model_swap?.current && last) return report;
    if (performance.now() > giveUpAt) throw new Error(`no swap finished: ${JSON.stringify(report.model_swap)}`);
    await sleep(100);
  }
}

interface Answer {
  photo: string;
  reply: Reply;
}

/** Closed-loop DEALERs, each recording its replies in order, until `until` resolves. */
async function runClients(endpoint: string, clients: number, until: Promise<unknown>): Promise<Answer[][]> {
  let stopping = false;
  void until.then(() => (stopping = true));
  return Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const socket = new zmq.Dealer({ receiveTimeout: 60_000, linger: 0 });
      socket.connect(endpoint);
      const answers: Answer[] = [];
      try {
        for (let n = 0; !stopping; n++) {
          const name = PHOTO_NAMES[(c + n) % PHOTO_NAMES.length];
          await socket.send(payloadOf(photo(name), { request_id: `c${c}-${n}` }));
          const [frame] = await socket.receive();
          const reply = JSON.parse(frame.toString()) as Reply;
          assert.equal(reply.request_id, `c${c}-${n}`, 'one reply per request, in order');
          answers.push({ photo: name, reply });
        }
      } finally {
        socket.close();
      }
      return answers;
    }),
  );
}

function top3(reply: ClassifyReply): Array<[string, number]> {
  return reply.predictions.slice(0, 3).map((p) => [p.label, p.probability]);
}

test('model:import into the store of a hub under load: every request answered once, each client moves to the new weights once, answers equal a fresh hub on them', { timeout: 300_000 }, async () => {
  const store = await copyOfTestStore('store-import', TINY_MODEL_DIR);
  const before = (await readManifest(store))!.weightsSha256;
  const hub = await launchHub({ args: [...HUB_ARGS, '--model-dir', store] });
  let newSha = '';
  let report: StatusReport | undefined;
  try {
    const importing = sleep(1500).then(async () => {
      const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', 'model-tools/import-cli.ts', tinyH5File, '--architecture', 'tiny-resnet', '--model-dir', store], { cwd: REPO_ROOT });
      assert.match(stdout, /running hub|picks? (them|it) up/i, 'the tool says the running hub takes the new weights');
      report = await waitForSwapEnd(hub);
      await sleep(1500); // load on the new model too
    });
    const perClient = await runClients(hub.zmq, 8, importing);
    await importing;
    newSha = report!.model.sha256;
    const swap = report!.model_swap!.history.at(-1)!;
    console.log(`# swap: ${JSON.stringify({ state: swap.state, steps_ms: swap.steps_ms, to_switch_ms: swap.to_switch_ms, rss_before_mib: swap.rss_before_mib, rss_peak_mib: swap.rss_peak_mib })}`);
    assert.equal(swap.state, 'done');
    assert.equal(swap.from, before);
    assert.equal(swap.to, newSha);
    assert.notEqual(newSha, before);
    assert.equal(report!.model.weights, 'imagenet');

    const all = perClient.flat();
    console.log(`# swap under load: ${all.length} replies from 8 clients`);
    for (const answer of all) expectSuccess(answer.reply);
    for (const [c, answers] of perClient.entries()) {
      const shas = answers.map((a) => (a.reply as ClassifyReply).model.sha256);
      const switchAt = shas.indexOf(newSha);
      assert.ok(switchAt > 0, `client ${c} was served by the old model first, then the new`);
      assert.ok(shas.slice(0, switchAt).every((sha) => sha === before), `client ${c}: only the old model before the switch`);
      assert.ok(shas.slice(switchAt).every((sha) => sha === newSha), `client ${c}: never back to the old model`);
    }
    // The reference: a hub started fresh on the new store.
    const newAnswers = all.filter((a) => (a.reply as ClassifyReply).model.sha256 === newSha);
    await hub.stop();
    const fresh = await launchHub({ args: [...HUB_ARGS, '--model-dir', store] });
    try {
      const reference = new Map<string, ClassifyReply>();
      for (const name of PHOTO_NAMES) reference.set(name, expectSuccess((await dealerRequest(fresh.zmq, payloadOf(photo(name)))).reply));
      assert.equal(reference.get('chelsea')!.model.sha256, newSha);
      for (const answer of newAnswers) {
        const expected = top3(reference.get(answer.photo)!);
        const got = top3(answer.reply as ClassifyReply);
        assert.deepEqual(got.map(([label]) => label), expected.map(([label]) => label), `${answer.photo}: same top 3 as a fresh hub`);
        for (let i = 0; i < 3; i++) assert.ok(Math.abs(got[i][1] - expected[i][1]) < 1e-4, `${answer.photo}: probability ${i + 1}`);
      }
    } finally {
      assert.equal(await fresh.stop(), 0);
    }
  } finally {
    await hub.stop();
  }
});

test('a new store the engine cannot load: nothing lost, the old model serves on, the failure shows in /api/status and the log', { timeout: 300_000 }, async () => {
  // The tiny model: what is tested is the swap's failure path, not the model.
  const store = await copyOfTestStore('store-broken', TINY_MODEL_DIR);
  const before = (await readManifest(store))!.weightsSha256;
  const hub = await launchHub({ args: [...HUB_ARGS, '--model-dir', store] });
  try {
    const breaking = sleep(1500).then(async () => {
      // A complete-looking store with other weights whose data is cut short, swapped in whole
      // as the tools do: the ONNX export cannot read it.
      const broken = await copyOfTestStore('broken-next', TINY_MODEL_DIR);
      const manifestFile = path.join(broken, MANIFEST_JSON);
      const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as { weightsSha256: string };
      manifest.weightsSha256 = 'f'.repeat(64);
      await writeFile(manifestFile, JSON.stringify(manifest));
      const shard = (await import('node:fs/promises')).readdir(broken).then((names) => names.find((n) => n.endsWith('.bin'))!);
      await truncate(path.join(broken, await shard), 1000);
      await rename(store, `${store}.old`);
      await rename(broken, store);
      const report = await waitForSwapEnd(hub);
      await sleep(1000);
      return report;
    });
    const perClient = await runClients(hub.zmq, 8, breaking);
    const report = await breaking;
    const swap = report.model_swap!.history.at(-1)!;
    console.log(`# failed swap: ${JSON.stringify({ state: swap.state, reason: swap.reason })}`);
    assert.equal(swap.state, 'failed');
    assert.ok(swap.reason && swap.reason.length > 0, 'it says why');
    assert.equal(report.model.sha256, before, 'the old model is still the one in use');
    for (const answer of perClient.flat()) assert.equal(expectSuccess(answer.reply).model.sha256, before);
    assert.ok(hub.logs.some((entry) => entry.msg === 'model swap failed; the old model keeps serving'), 'logged');
    expectSuccess((await dealerRequest(hub.zmq, payloadOf(photo('coffee')))).reply);
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});

test('SIGTERM in the middle of a swap: the hub drains and exits 0', { timeout: 300_000 }, async () => {
  const store = await copyOfTestStore('store-sigterm', TINY_MODEL_DIR);
  const hub = await launchHub({ args: [...HUB_ARGS, '--model-dir', store, '--model-poll-ms', '0'] });
  // The new weights are put in place first; SIGHUP starts the swap, SIGTERM follows while it prepares.
  await execFileAsync(process.execPath, ['--import', 'tsx', 'model-tools/import-cli.ts', tinyH5File, '--architecture', 'tiny-resnet', '--model-dir', store], { cwd: REPO_ROOT });
  const inFlight = Array.from({ length: 6 }, (_, i) => dealerRequest(hub.zmq, payloadOf(photo('rocket'), { request_id: `f${i}` })));
  hub.child.kill('SIGHUP');
  let swapping = await status(hub);
  for (let tries = 0; tries < 100 && !swapping.model_swap?.current; tries++) {
    await sleep(10);
    swapping = await status(hub);
  }
  assert.ok(swapping.model_swap?.current, `a swap is under way (${JSON.stringify(swapping.model_swap)})`);
  hub.child.kill('SIGTERM');
  const replies = await Promise.all(inFlight);
  for (const { reply } of replies) assert.ok(!('error' in reply) || reply.error.code === 'shutting_down', JSON.stringify(reply));
  assert.equal(await hub.exited, 0);
});

test('Open Inference requests of several images across a swap: every image of an answer was computed with the weights its version names', { timeout: 300_000 }, async () => {
  const store = await copyOfTestStore('store-v2', TINY_MODEL_DIR);
  const hub = await launchHub({ args: [...HUB_ARGS, '--model-dir', store, '--model-poll-ms', '0'] });
  try {
    const names = [...PHOTO_NAMES];
    const body = JSON.stringify({
      inputs: [{ name: 'image', datatype: 'BYTES', shape: [names.length], data: names.map((name) => photo(name).toString('base64')) }],
      outputs: [{ name: 'probabilities', parameters: { classification: 3 } }],
    });
    const infer = async () => (await (await fetch(`${hub.http}/v2/models/resnet50/infer`, { method: 'POST', body })).json()) as { model_version: string; outputs: Array<{ data: string[] }> };
    /** Per model version, each photo's top 3 as "index:label" (the probabilities apart). */
    const topOf = (answer: Awaited<ReturnType<typeof infer>>) => names.map((_, i) => answer.outputs[0].data.slice(3 * i, 3 * i + 3).map((entry) => entry.split(':').slice(1).join(':')));
    const before = await infer();
    await execFileAsync(process.execPath, ['--import', 'tsx', 'model-tools/import-cli.ts', tinyH5File, '--architecture', 'tiny-resnet', '--model-dir', store], { cwd: REPO_ROOT });
    let stopping = false;
    const answers: Array<Awaited<ReturnType<typeof infer>>> = [];
    const clients = Array.from({ length: 4 }, async () => {
      while (!stopping) answers.push(await infer());
    });
    await sleep(300);
    hub.child.kill('SIGHUP');
    await waitForSwapEnd(hub);
    await sleep(300);
    stopping = true;
    await Promise.all(clients);
    const after = await infer();
    assert.notEqual(after.model_version, before.model_version, 'the swap happened');
    const reference = new Map([
      [before.model_version, topOf(before)],
      [after.model_version, topOf(after)],
    ]);
    assert.notDeepEqual(reference.get(before.model_version), reference.get(after.model_version), 'the two weights answer differently');
    const versions = new Set(answers.map((answer) => answer.model_version));
    console.log(`# ${answers.length} requests of ${names.length} images across the swap`);
    assert.deepEqual([...versions].sort(), [...reference.keys()].sort(), 'answers from both sides of the swap');
    for (const answer of answers) assert.deepEqual(topOf(answer), reference.get(answer.model_version), `every image of an answer of ${answer.model_version.slice(0, 12)} is that model's`);
  } finally {
    await hub.stop();
  }
});

test('a hub on int8: new weights get a new model.int8.onnx before the switch, and replies say int8 on both sides of it', { timeout: 300_000 }, async () => {
  const store = await copyOfTestStore('store-int8', TINY_MODEL_DIR);
  const before = (await readManifest(store))!.weightsSha256;
  const hub = await launchHub({ args: [...HUB_ARGS, '--precision', 'int8', '--model-dir', store, '--model-poll-ms', '0'] });
  try {
    const old = expectSuccess((await dealerRequest(hub.zmq, payloadOf(photo('coffee')))).reply);
    assert.equal(old.model.precision, 'int8');
    assert.equal(old.model.sha256, before);
    await execFileAsync(process.execPath, ['--import', 'tsx', 'model-tools/import-cli.ts', tinyH5File, '--architecture', 'tiny-resnet', '--model-dir', store], { cwd: REPO_ROOT });
    hub.child.kill('SIGHUP');
    const report = await waitForSwapEnd(hub);
    const swap = report.model_swap!.history.at(-1)!;
    assert.equal(swap.state, 'done', JSON.stringify(swap));
    const newSha = report.model.sha256;
    assert.notEqual(newSha, before);
    const sidecar = await readInt8Sidecar(store);
    assert.equal(sidecar?.weightsSha256, newSha, 'the int8 file was re-made from the new weights');
    assert.equal(await int8Staleness(store, await int8Key(DEFAULT_QUANTIZATION)), null, 'and it is current');
    assert.equal(report.model.int8_fidelity?.pooled_sqnr_db, sidecar?.report.pooled_sqnr_db, '/api/status shows the new model\'s fidelity');
    const fresh = expectSuccess((await dealerRequest(hub.zmq, payloadOf(photo('coffee')))).reply);
    assert.equal(fresh.model.precision, 'int8');
    assert.equal(fresh.model.sha256, newSha);
    assert.notDeepEqual(top3(fresh), top3(old), 'the sharper classifier changes the answer');
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});
