/**
 * A model swap with a volunteer tab connected (real hub, real Chromium on WebGPU, the tiny
 * model): the tab is told, fetches the new weights (checked against their hash), and serves
 * again; with no local workers every answer is the tab's, and none computed with the old
 * weights answers a request admitted under the new ones. The classify page's untrained banner
 * goes away when ImageNet weights arrive, and the dashboard shows the swap, without a reload.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import * as zmq from 'zeromq';
import { readManifest } from '../../../model-store/store.ts';
import type { ClassifyReply, Reply } from '../../../shared/protocol/classify.ts';
import type { StatusReport } from '../../../shared/protocol/status.ts';
import { launchChromium } from '../../../kit/browser.ts';
import type { LaunchedBrowser } from '../../../kit/browser.ts';
import { launchHub } from '../../../kit/hub-process.ts';
import type { HubProcess } from '../../../kit/hub-process.ts';
import { writeSharperClassifierH5 } from '../../support/keras-h5.ts';
import { REPO_ROOT, TINY_MODEL_DIR } from '../../../kit/paths.ts';
import { dealerRequest, expectSuccess, payloadOf, photo, PHOTO_NAMES } from '../../../kit/zmq-clients.ts';

const execFileAsync = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** What a tab on WebGPU may differ from ONNX Runtime by (the verifier's own tolerance). */
const TOLERANCE = 0.02;

let work: string;
let browser: LaunchedBrowser;
let h5File: string;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'resnet-hub-volunteer-swap-'));
  browser = await launchChromium();
  // Weights B: the tiny test model's, with a sharper classifier, as a Keras file (so "imagenet").
  h5File = path.join(work, 'tiny-b.h5');
  await writeSharperClassifierH5(TINY_MODEL_DIR, h5File);
});

after(async () => {
  await browser?.close();
  await rm(work, { recursive: true, force: true });
});

async function status(hub: HubProcess): Promise<StatusReport> {
  return (await (await fetch(`${hub.http}/api/status`)).json()) as StatusReport;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Each photo's answer from a hub's own ONNX worker on a store: the reference for that model. */
async function referenceAnswers(store: string): Promise<Map<string, ClassifyReply>> {
  const hub = await launchHub({ args: ['--engine', 'onnx', '--workers', '1', '--model-dir', store, '--model-poll-ms', '0'] });
  try {
    const answers = new Map<string, ClassifyReply>();
    for (const name of PHOTO_NAMES) answers.set(name, expectSuccess((await dealerRequest(hub.zmq, payloadOf(photo(name), { top: 5 }))).reply));
    return answers;
  } finally {
    assert.equal(await hub.stop(), 0);
  }
}

function assertMatches(got: ClassifyReply, expected: ClassifyReply, what: string): void {
  assert.equal(got.predictions[0].label, expected.predictions[0].label, `${what}: top-1`);
  assert.ok(Math.abs(got.predictions[0].probability - expected.predictions[0].probability) <= TOLERANCE, `${what}: top-1 probability`);
}

interface Sent {
  photo: string;
  sentAt: number;
  reply: Reply;
}

test('a tab connected during a swap fetches the new model and serves again; no old-model answer reaches a request of the new model', { timeout: 400_000 }, async () => {
  const store = path.join(work, 'store');
  await cp(TINY_MODEL_DIR, store, { recursive: true, dereference: true });
  const oldSha = (await readManifest(store))!.weightsSha256;
  const referenceOld = await referenceAnswers(store);

  const hub = await launchHub({ args: ['--model-dir', store, '--workers', '0', '--model-poll-ms', '250'] });
  try {
    const classifyPage = await browser.newPage();
    await classifyPage.page.goto(`${hub.http}/`);
    await classifyPage.page.waitForSelector('#model-banner:not([hidden])', { timeout: 30_000 });
    const dashboard = await browser.newPage();
    await dashboard.page.goto(`${hub.http}/dashboard`);
    await dashboard.page.waitForSelector('#live-badge[data-state="live"]', { timeout: 30_000 });

    const tab = await browser.newPage();
    // One image per job: the swap is what is tested, and the tab starts in about half the time.
    await tab.page.goto(`${hub.http}/volunteer?autostart=1&max_batch=1`);
    await waitFor('the tab to join', async () => (await status(hub)).volunteers.find((v) => v.state === 'ready' || v.state === 'busy'), 180_000);

    // Two closed-loop clients through the whole swap.
    let stopping = false;
    const sent: Sent[] = [];
    const clients = Array.from({ length: 2 }, async (_, c) => {
      const socket = new zmq.Dealer({ receiveTimeout: 180_000, linger: 0 });
      socket.connect(hub.zmq);
      try {
        for (let n = 0; !stopping; n++) {
          const name = PHOTO_NAMES[(c + n) % PHOTO_NAMES.length];
          const sentAt = Date.now();
          await socket.send(payloadOf(photo(name), { request_id: `c${c}-${n}`, top: 5 }));
          const reply = JSON.parse((await socket.receive())[0].toString()) as Reply;
          sent.push({ photo: name, sentAt, reply });
        }
      } finally {
        socket.close();
      }
    });

    await sleep(1000);
    const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', 'model-tools/import-cli.ts', h5File, '--architecture', 'tiny-resnet', '--model-dir', store], { cwd: REPO_ROOT });
    assert.match(stdout, /running hub/);
    const newSha = (await readManifest(store))!.weightsSha256;
    const swap = await waitFor('the swap', async () => (await status(hub)).model_swap?.history.find((s) => s.state === 'done' || s.state === 'failed'), 60_000);
    assert.equal(swap.state, 'done', swap.reason);
    const switchedBy = Date.parse(swap.finished_at!);
    // The tab comes back with the new weights and serves again.
    await waitFor('an answer computed with the new weights', async () => (sent.some((s) => 'preds' in s.reply && s.reply.model.sha256 === newSha) ? true : undefined), 180_000);
    await sleep(1000);
    stopping = true;
    await Promise.all(clients);

    const referenceNew = await referenceAnswers(store);
    const byModel = { old: 0, new: 0 };
    for (const { photo: name, sentAt, reply } of sent) {
      const result = expectSuccess(reply);
      // --workers 0: a pure coordinator, every answer is the tab's, computed on WebGPU.
      assert.equal(result.executor.kind, 'volunteer', 'only the tab computes');
      assert.equal(result.executor.engine, 'webgpu');
      assert.equal(result.predictions.length, 5, 'top as asked');
      if (result.model.sha256 === oldSha) {
        byModel.old++;
        assert.ok(sentAt < switchedBy, 'an old-model answer only for a request sent before the switch ended');
        assertMatches(result, referenceOld.get(name)!, `${name} on the old model`);
      } else {
        assert.equal(result.model.sha256, newSha);
        byModel.new++;
        assertMatches(result, referenceNew.get(name)!, `${name} on the new model`);
      }
    }
    console.log(`# volunteer swap: ${JSON.stringify(byModel)} answers by model; swap ${JSON.stringify(swap.steps_ms)}`);
    assert.ok(byModel.old > 0 && byModel.new > 0, 'the tab served both models, one after the other');
    assert.ok(oldSha !== newSha);

    // The pages followed without a reload.
    await classifyPage.page.waitForSelector('#model-banner[hidden]', { state: 'attached', timeout: 10_000 });
    await dashboard.page.waitForSelector('[data-swap-state="done"]', { timeout: 10_000 });
    assert.match(await dashboard.page.textContent('#activity') ?? '', /model swap #1 .* done/);
    assert.deepEqual([...classifyPage.problems, ...dashboard.problems, ...tab.problems], [], 'no console errors');
  } finally {
    assert.equal(await hub.stop(), 0);
  }
});
