/**
 * Volunteer protocol version 2 and a tab's standing, against the hub's real registry, executor
 * and scheduler: tabs that pause (hidden, frozen, a lost GPU device) and resume, connections that
 * go half-open, tabs that earn and lose their standing, and verification that follows it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkChance } from '../../server/scheduler/verifier.ts';
import { VolunteerExecutor } from '../../server/volunteers/volunteer-executor.ts';
import type { VolunteerLink } from '../../server/volunteers/volunteer-executor.ts';
import { PROBATION_JOBS } from '../../server/volunteers/standing-policy.ts';
import { FakeVolunteer, HEARTBEAT_MS, TEST_TIMEOUT_MS, image, job, joined, sleep, startTestHub, topClass, waitFor } from '../support/fake-volunteer.ts';

const V2 = '?protocol=2';

test('a tab that asks for version 2 is welcomed with it; a hello naming another version is refused', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const tab = await FakeVolunteer.connect(t, hub.url + V2, 100);
  assert.equal((await tab.welcome()).protocol, 2);
  await joined(hub, tab);
  assert.equal(hub.volunteers.list()[0].protocol, 2);

  const confused = await FakeVolunteer.connect(t, hub.url + V2, 200);
  await confused.hello({ protocol: 1 });
  await waitFor(() => hub.volunteers.list().find((v) => v.id === confused.id && v.violations === 1), 'the mismatch to count as a violation');
  assert.equal(hub.volunteers.list().find((v) => v.id === confused.id)?.state, 'joining', 'not joined');

  const unknown = await FakeVolunteer.connect(t, `${hub.url}?protocol=99`, 300);
  assert.equal((await unknown.welcome()).protocol, 2, 'a version from the future gets the newest the hub speaks');
});

test('pause hands the job in hand back at once, not as a failure; no work while paused; resume takes work again', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const holder = await FakeVolunteer.connect(t, hub.url + V2, 100);
  await joined(hub, holder);
  holder.mode = 'hold';
  const first = job(1);
  hub.scheduler.submit(first);
  await waitFor(() => holder.jobs.length === 1, 'the job to reach the tab');

  const other = await FakeVolunteer.connect(t, hub.url + V2, 500);
  other.mode = 'hold';
  await joined(hub, other);
  const handedBackAt = performance.now();
  holder.send({ type: 'pause', reason: 'hidden' });
  await waitFor(() => other.jobs.length === 1, 'the handed-back job to reach the other tab');
  assert.ok(performance.now() - handedBackAt < 1000, 'handed back at once, not after a timeout');
  other.result(other.jobs[0]);
  assert.equal(topClass(await first.outcome()), 501, "the other tab's answer");

  const status = hub.volunteers.list().find((v) => v.id === holder.id)!;
  assert.equal(status.state, 'paused');
  assert.equal(status.standing, 'paused');
  assert.equal(status.paused_reason, 'hidden');
  assert.equal(status.handed_back, 1);
  assert.equal(status.failures, 0, 'a job handed back is not a failure of the tab');

  // While paused, nothing reaches it even when it is the only tab free.
  other.mode = 'hold';
  const second = job(2);
  const third = job(3);
  hub.scheduler.submit(second);
  hub.scheduler.submit(third);
  await sleep(100);
  assert.equal(holder.jobs.length, 1, 'no job for a paused tab');

  holder.mode = 'answer';
  holder.send({ type: 'resume' });
  assert.equal(topClass(await third.outcome()), 103, 'resumed, it takes work again');
  assert.equal(hub.volunteers.list().find((v) => v.id === holder.id)?.standing, 'probation');
  other.result(other.jobs[1]);
  await second.outcome();
});

test('a version 1 tab that sends pause breaks the protocol; it is counted and ignored', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const old = await FakeVolunteer.connect(t, hub.url, 100);
  await joined(hub, old);
  old.send({ type: 'pause', reason: 'hidden' });
  await waitFor(() => hub.volunteers.stats().violations_total === 1, 'the violation');
  const j = job(7);
  hub.scheduler.submit(j);
  assert.equal(topClass(await j.outcome()), 107, 'still working: the pause did not count');
});

test('a frozen tab (paused, no heartbeats, its connection answering pings) stays connected; a half-open one is dropped within a few beats', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const frozen = await FakeVolunteer.connect(t, hub.url + V2, 100);
  await joined(hub, frozen);
  frozen.send({ type: 'pause', reason: 'frozen' });
  frozen.stopHeartbeat();

  const halfOpen = await FakeVolunteer.connect(t, hub.url + V2, 200);
  await joined(hub, halfOpen);
  const cutAt = performance.now();
  // Reads nothing more and sends nothing: no heartbeat, no pong.
  halfOpen.stopHeartbeat();
  halfOpen.ws.pause();
  await waitFor(() => !hub.volunteers.list().some((v) => v.id === halfOpen.id), 'the half-open tab to be dropped', 20 * HEARTBEAT_MS);
  const detectedMs = performance.now() - cutAt;
  assert.ok(detectedMs <= 5 * HEARTBEAT_MS, `half-open found within a few beats (${detectedMs.toFixed(0)} ms, beat ${HEARTBEAT_MS} ms)`);

  await sleep(10 * HEARTBEAT_MS);
  assert.equal(hub.volunteers.list().find((v) => v.id === frozen.id)?.state, 'paused', 'the frozen tab is still there, paused');
  frozen.startHeartbeat();
  frozen.send({ type: 'resume' });
  const j = job(9);
  hub.scheduler.submit(j);
  assert.equal(topClass(await j.outcome()), 109, 'woken, it serves again on the same connection');
});

/** An executor whose jobs go nowhere: the test answers them by hand. */
function detachedExecutor(sent: number[]): VolunteerExecutor {
  const link: VolunteerLink = { send: () => undefined, sendJob: (frame) => void sent.push(new DataView(frame.buffer).getUint32(4, true)) };
  let nextId = 0;
  const hello = { type: 'hello', protocol: 2, backend: 'webgpu', model_sha256: 'ab'.repeat(32), per_image_ms: 5, max_batch: 4 } as const;
  return new VolunteerExecutor({ id: 'v', hello, link, maxBatch: 4, topK: 1, nextJobId: () => ++nextId, failureRestMs: 50 });
}

function answer(executor: VolunteerExecutor, jobId: number): void {
  executor.handleResult({ type: 'result', job_id: jobId, indices: [[1]], probabilities: [[0.5]], compute_ms: 1 });
}

test('standing: trusted after its probation answers; a late job sends it back to probation and to a rest; its checks follow', async () => {
  const sent: number[] = [];
  const executor = detachedExecutor(sent);
  assert.equal(executor.standing, 'probation');
  assert.equal(checkChance(0.05, executor), 1, "a newcomer's first answer is always checked");
  for (let i = 0; i < PROBATION_JOBS; i++) {
    const running = executor.run([image(i)]);
    answer(executor, sent.at(-1)!);
    await running;
  }
  assert.equal(executor.standing, 'trusted');
  assert.equal(executor.maxBatch, 4, 'trusted, it gets whole batches');
  assert.ok(checkChance(0.05, executor) < 1 && checkChance(0.05, executor) > 0.05, 'checked less often, not yet at the floor');

  const late = executor.run([image(9)]);
  executor.noteLate();
  assert.equal(executor.standing, 'probation', 'late on a job: its record is worth its claim again');
  assert.equal(checkChance(0.05, executor), 1);
  answer(executor, sent.at(-1)!);
  await late;
  assert.equal(executor.standing, 'backing_off', 'and it rests before it gets work again');
  assert.equal(executor.available, false);
  await waitFor(() => executor.available, 'the rest to end');
  assert.equal(executor.lateJobs, 1);
  assert.equal(checkChance(0, executor), 0, 'a fraction of 0 checks nobody');
  assert.equal(checkChance(0.05, { earnedAnswers: 1000 }), 0.05, 'the floor is the configured fraction');
  assert.equal(checkChance(0.3, { earnedAnswers: undefined }), 0.3, 'an executor without a record (local) gets the fraction');
});
