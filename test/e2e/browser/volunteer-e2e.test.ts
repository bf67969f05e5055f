/**
 * Volunteers end to end: the real hub, real headless Chromium tabs computing on WebGPU
 * (SwiftShader), real ZeroMQ clients. Most cases run the tiny ResNet (same layers, same code
 * path); one runs the full ResNet50 through WebGPU.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as zmq from 'zeromq';
import type { ClassifyReply, Reply } from '../../../shared/protocol/classify.ts';
import { launchChromium } from '../../../kit/browser.ts';
import { joinVolunteer, volunteers, waitFor } from '../../support/volunteers.ts';
import type { LaunchedBrowser } from '../../../kit/browser.ts';
import { launchHub } from '../../../kit/hub-process.ts';
import { TEST_MODEL_DIR, TINY_MODEL_DIR } from '../../../kit/paths.ts';
import { dealerRequest, expectSuccess, payloadOf, photo, PHOTO_NAMES } from '../../../kit/zmq-clients.ts';



const images = PHOTO_NAMES.slice(0, 4).map((name) => photo(name));

describe('volunteers on the tiny model', () => {
  let browser: LaunchedBrowser;
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
  });

  // The pure coordinator (--workers 0, every answer a tab's over ZeroMQ) is covered by
  // test/e2e/browser/volunteer-swap.test.ts, which runs exactly that hub through a model swap.

  test('a volunteer answers as the local engine does; a lying one is caught and quarantined', async () => {
    const hub = await launchHub({ args: ['--model-dir', TINY_MODEL_DIR, '--workers', '1', '--offload', 'prefer', '--verify-fraction', '1'] });
    try {
      // One image per job (?max_batch=1): what is tested needs no batch, and the tab then skips
      // compiling the batch shaders, which is half of its start on SwiftShader.
      const { tab, id } = await joinVolunteer(browser, hub, '&max_batch=1');
      assert.equal((await volunteers(hub)).find((v) => v.id === id)?.max_batch, 1, 'the tab offers what its URL asks');
      // The dashboard watches the volunteers throughout.
      const dashboard = await browser.newPage();
      await dashboard.page.goto(`${hub.http}/dashboard`);
      const row = await dashboard.page.waitForSelector(`#executors tr[data-executor-id="${id}"][data-kind="volunteer"]`, { timeout: 15_000 });
      const rowText = (await row.textContent()) ?? '';
      assert.match(rowText, /webgpu/, 'the dashboard shows the backend');
      assert.match(rowText, /swiftshader/i, 'and the GPU adapter');
      for (const image of images) {
        const local = expectSuccess((await dealerRequest(hub.zmq, payloadOf(image, { offload: false }))).reply);
        const remote = expectSuccess((await dealerRequest(hub.zmq, payloadOf(image), 60_000)).reply);
        assert.equal(local.executor.kind, 'local');
        assert.equal(remote.executor.kind, 'volunteer', 'verified and kept: the answers agree');
        assert.deepEqual(remote.predictions.map((p) => p.index), local.predictions.map((p) => p.index));
        remote.predictions.forEach((p, i) => assert.ok(Math.abs(p.probability - local.predictions[i].probability) <= 0.02));
      }
      await tab.page.close();
      await waitFor('the honest tab to leave', async () => ((await volunteers(hub)).some((v) => v.id === id) ? undefined : true), 15_000);

      const liar = await joinVolunteer(browser, hub, '&fault=wrong&max_batch=1');
      const honestAnswer = expectSuccess((await dealerRequest(hub.zmq, payloadOf(images[0], { offload: false }))).reply);
      const checked = expectSuccess((await dealerRequest(hub.zmq, payloadOf(images[0]), 60_000)).reply);
      assert.equal(checked.preds, honestAnswer.preds, 'the reply carries the local answer, not the lie');
      const caught = await waitFor(
        'the liar to be quarantined',
        async () => (await volunteers(hub)).find((v) => v.id === liar.id && v.state === 'quarantined'),
        15_000,
      );
      assert.match(caught.quarantine_reason ?? '', /disagreed/);
      assert.equal(await liar.tab.page.evaluate(() => document.body.dataset.state), 'quarantined', 'the tab says so too');
      await dashboard.page.waitForSelector(`#executors tr[data-executor-id="${liar.id}"][data-state="quarantined"]`, { timeout: 15_000 });
      const activity = (await dashboard.page.textContent('#activity')) ?? '';
      assert.match(activity, new RegExp(`${id} joined`), 'the activity log saw the honest tab join');
      assert.match(activity, new RegExp(`${liar.id} quarantined`), 'and the liar quarantined');
      assert.deepEqual(dashboard.problems, [], 'no console errors on the dashboard');
      await dashboard.page.close();
      await liar.tab.page.close();
    } finally {
      await hub.stop();
    }
  });

  test('a tab closed with jobs in flight: every request is still answered, by local workers', async () => {
    const hub = await launchHub({ args: ['--model-dir', TINY_MODEL_DIR, '--workers', '1', '--offload', 'prefer', '--verify-fraction', '0'] });
    try {
      const { tab, id } = await joinVolunteer(browser, hub, '&max_batch=1');
      const socket = new zmq.Dealer({ receiveTimeout: 60_000, linger: 0 });
      socket.connect(hub.zmq);
      const sent = 8;
      for (let i = 0; i < sent; i++) await socket.send(payloadOf(images[i % images.length], { request_id: String(i) }));
      await waitFor('a job on the volunteer', async () => ((await volunteers(hub)).find((v) => v.id === id)?.state === 'busy' ? true : undefined), 20_000);
      await tab.page.close();
      const replies: ClassifyReply[] = [];
      for (let i = 0; i < sent; i++) replies.push(expectSuccess(JSON.parse((await socket.receive())[0].toString()) as Reply));
      socket.close();
      assert.deepEqual(replies.map((r) => r.request_id).sort(), ['0', '1', '2', '3', '4', '5', '6', '7']);
      assert.ok(replies.some((r) => r.executor.kind === 'local'), 'local workers took over');
      const byExecutor = replies.reduce<Record<string, number>>((counts, r) => ({ ...counts, [r.executor.id]: (counts[r.executor.id] ?? 0) + 1 }), {});
      console.log(`# mixed pool, tab closed mid-run: ${JSON.stringify(byExecutor)}`);
    } finally {
      await hub.stop();
    }
  });
});

test('the full ResNet50 runs through WebGPU on a volunteer', { timeout: 600_000 }, async () => {
  const browser = await launchChromium();
  const hub = await launchHub({ modelDir: TEST_MODEL_DIR, args: ['--workers', '0'] });
  try {
    // One image per job: what is tested is ResNet50 on WebGPU, and a tab that offers batches
    // first compiles and warms them up (half a minute more of SwiftShader).
    const { tab } = await joinVolunteer(browser, hub, '&max_batch=1', 400_000);
    const started = performance.now();
    const { reply } = await dealerRequest(hub.zmq, payloadOf(images[1]), 300_000);
    const result = expectSuccess(reply);
    assert.equal(result.executor.kind, 'volunteer');
    assert.equal(result.model.name, 'resnet50');
    console.log(`# full ResNet50 on a SwiftShader volunteer: ${Math.round(performance.now() - started)} ms for one request`);
    assert.deepEqual(tab.problems, []);
  } finally {
    await hub.stop();
    await browser.close();
  }
});
