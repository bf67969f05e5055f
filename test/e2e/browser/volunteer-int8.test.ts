/**
 * Volunteers stay fair when the hub's own workers serve int8: volunteers compute fp32, and the
 * hub checks them against fp32 (a verification job runs on the worker's model.onnx session),
 * so int8's own error never counts against an honest tab; a lying one is still caught. The
 * real hub, the tiny model quantized in a store of its own, a real headless Chromium tab (the
 * honest one) and a lying peer speaking the volunteer protocol.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import type { RawData } from 'ws';
import { MAX_TOP } from '../../../shared/labels.ts';
import { decodeJobFrame } from '../../../shared/protocol/volunteer.ts';
import type { HubMessage } from '../../../shared/protocol/volunteer.ts';
import { launchChromium } from '../../../kit/browser.ts';
import { joinVolunteer, volunteers, waitFor } from '../../support/volunteers.ts';
import type { LaunchedBrowser } from '../../../kit/browser.ts';
import { launchHub } from '../../../kit/hub-process.ts';
import type { HubProcess } from '../../../kit/hub-process.ts';
import { TINY_MODEL_DIR } from '../../../kit/paths.ts';
import { dealerRequest, expectSuccess, payloadOf, photo, PHOTO_NAMES } from '../../../kit/zmq-clients.ts';


/** The verifications counter for one verdict, from /metrics (whatever other labels it carries). */
async function verifications(hub: HubProcess, verdict: 'agreed' | 'disagreed'): Promise<number> {
  const text = await (await fetch(`${hub.http}/metrics`)).text();
  const match = new RegExp(`^resnet_hub_volunteer_verifications_total\\{[^}]*verdict="${verdict}"[^}]*\\} (\\S+)$`, 'm').exec(text);
  assert.ok(match, `no ${verdict} verifications series in /metrics`);
  return Number(match[1]);
}

/** A volunteer peer on /ws/volunteer that joins properly and answers every job with the wrong class. */
async function joinLyingPeer(hub: HubProcess): Promise<{ id: string; close(): void }> {
  const known = new Set((await volunteers(hub)).map((v) => v.id));
  const ws = new WebSocket(`${hub.http.replace('http', 'ws')}/ws/volunteer`, { origin: hub.http });
  let beat: NodeJS.Timeout | undefined;
  ws.on('message', (data: RawData, isBinary) => {
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (!isBinary) {
      const message = JSON.parse(bytes.toString('utf8')) as HubMessage;
      if (message.type !== 'welcome') return;
      ws.send(JSON.stringify({ type: 'hello', protocol: message.protocol, backend: 'webgpu', model_sha256: message.model.sha256, per_image_ms: 5, max_batch: 1 }));
      beat = setInterval(() => ws.send(JSON.stringify({ type: 'heartbeat', sent_at: Date.now() })), 500);
      return;
    }
    const job = decodeJobFrame(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    const row = Array.from({ length: MAX_TOP }, (_, k) => (997 - k) % 1000);
    ws.send(JSON.stringify({ type: 'result', job_id: job.jobId, indices: Array(job.batch).fill(row), probabilities: Array(job.batch).fill(row.map((_, k) => 0.9 / (k + 1))), compute_ms: 5 }));
  });
  ws.on('error', () => undefined);
  const id = await waitFor('the lying peer to join', async () => (await volunteers(hub)).find((v) => !known.has(v.id) && v.state === 'ready')?.id, 15_000);
  return {
    id,
    close: () => {
      clearInterval(beat);
      ws.terminate();
    },
  };
}

/**
 * Every photo: on the tiny model, int8 moves coffee's top probabilities by 0.026 (beyond the
 * verifier's 0.02) and swaps hubble_deep_field's top-1, so a check made against int8 instead
 * of fp32 would wrongly blame the honest tab, and this test would catch it.
 */
const images = PHOTO_NAMES.map((name) => photo(name));

let browser: LaunchedBrowser;
let store: string;
before(async () => {
  // A store of its own: the hub writes model.int8.onnx and its report into it.
  store = await mkdtemp(path.join(os.tmpdir(), 'resnet-hub-volunteer-int8-'));
  await cp(TINY_MODEL_DIR, store, { recursive: true, dereference: true });
  // Stock WebGPU (workgroup memory zeroed, as in a volunteer's browser): the other browser
  // tests skip the zeroing for a quicker start, and this one shows the answers do not depend on it.
  browser = await launchChromium({ stockWebGpu: true });
});
after(async () => {
  await browser?.close();
  if (store) await rm(store, { recursive: true, force: true });
});

test('local workers on int8: an honest volunteer is verified against fp32 and kept; a lying one is quarantined', { timeout: 180_000 }, async () => {
  const hub = await launchHub({
    args: ['--model-dir', store, '--engine', 'onnx', '--precision', 'int8', '--workers', '1', '--verify-fraction', '1', '--offload', 'prefer'],
  });
  try {
    const local = expectSuccess((await dealerRequest(hub.zmq, payloadOf(images[0], { offload: false }))).reply);
    assert.equal(local.executor.kind, 'local');
    assert.equal(local.model.precision, 'int8', 'the local workers serve int8');

    const honest = await joinVolunteer(browser, hub, '&max_batch=1'); // no batch needed: a quicker start
    for (const image of images) {
      const remote = expectSuccess((await dealerRequest(hub.zmq, payloadOf(image), 60_000)).reply);
      // With --verify-fraction 1 a disagreeing answer would be replaced by the local one.
      assert.equal(remote.executor.kind, 'volunteer', 'verified and kept: the volunteer agrees with fp32');
    }
    assert.ok((await verifications(hub, 'agreed')) >= images.length, 'every volunteer answer was checked, and agreed');
    assert.equal(await verifications(hub, 'disagreed'), 0);
    const seen = (await volunteers(hub)).find((v) => v.id === honest.id);
    assert.ok(seen && (seen.state === 'ready' || seen.state === 'busy'), `the honest tab is serving, not ${seen?.state}`);
    assert.deepEqual(honest.tab.problems, [], 'no console errors on the honest tab');
    await honest.tab.page.close();
    await waitFor('the honest tab to leave', async () => ((await volunteers(hub)).some((v) => v.id === honest.id) ? undefined : true), 15_000);

    // The liar speaks the protocol from here (its lie is its answers, not its GPU): a real tab
    // would spend half a minute of software WebGPU warming up to tell the same lie.
    const liar = await joinLyingPeer(hub);
    const checked = expectSuccess((await dealerRequest(hub.zmq, payloadOf(images[1]), 60_000)).reply);
    assert.equal(checked.executor.kind, 'local', 'the reply carries the local answer, not the lie');
    const caught = await waitFor(
      'the liar to be quarantined',
      async () => (await volunteers(hub)).find((v) => v.id === liar.id && v.state === 'quarantined'),
      15_000,
    );
    assert.match(caught.quarantine_reason ?? '', /disagreed/);
    assert.ok((await verifications(hub, 'disagreed')) >= 1);
    liar.close();
  } finally {
    await hub.stop();
  }
});
