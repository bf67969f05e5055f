/**
 * The hub's side of `/ws/volunteer`, against a real Scheduler and a real HTTP server, with fake
 * tabs that speak the protocol (test/support/fake-volunteer.ts). These connect without
 * `?protocol=`, as a tab from before version 2 does: version 1 must keep working.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CLOSE_REFUSED, CLOSE_STOP, CLOSE_VIOLATIONS, MAX_VOLUNTEER_MESSAGE_BYTES } from '../../shared/protocol/volunteer.ts';
import { VolunteerExecutor } from '../../server/volunteers/volunteer-executor.ts';
import {
  FakeVolunteer,
  HEARTBEAT_MS,
  MODEL_SHA,
  TEST_TIMEOUT_MS,
  TOP_K,
  image,
  job,
  joined,
  sleep,
  startTestHub,
  topClass,
  upgradeStatus,
  waitFor,
} from '../support/fake-volunteer.ts';

test('a tab is welcomed, joins the scheduler on hello, and answers a job with its result', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t, { maxBatch: 8 });
  const tab = await FakeVolunteer.connect(t, hub.url, 700);
  const welcome = await tab.welcome();
  assert.equal(welcome.protocol, 1, 'a tab that does not ask for version 2 (one from before it) is welcomed with version 1');
  assert.deepEqual(welcome.model, { url: '/models/current/model.json', sha256: MODEL_SHA, weights: 'untrained' });
  assert.equal(welcome.heartbeat_ms, HEARTBEAT_MS);
  assert.equal(welcome.top_k, TOP_K);
  assert.equal(welcome.max_batch, 8);
  assert.equal(hub.volunteers.list()[0].state, 'joining');
  assert.equal(hub.scheduler.listExecutors().length, 0, 'no executor before hello');

  const joinedEvents: string[] = [];
  hub.volunteers.on('joined', (status) => joinedEvents.push(status.id));
  await joined(hub, tab, { max_batch: 4 });
  const [executor] = hub.scheduler.listExecutors();
  assert.equal(executor.kind, 'volunteer');
  assert.equal(executor.id, tab.id);
  assert.equal(executor.engine, 'webgpu');
  assert.ok(executor instanceof VolunteerExecutor);
  assert.equal(executor.batchLimit, 4, 'the smaller of the hub limit and the tab limit');
  assert.equal(executor.maxBatch, 1, 'one image at a time on probation');
  assert.equal(executor.proven, false);
  assert.deepEqual(joinedEvents, [tab.id]);

  const j = job(42);
  hub.scheduler.submit(j);
  const outcome = await j.outcome();
  assert.ok(outcome.ok);
  assert.equal(outcome.executor.kind, 'volunteer');
  assert.equal(outcome.executor.id, tab.id);
  assert.equal(outcome.result.indices[0], 742, "the tab's answer");
  assert.equal(outcome.result.indices.length, TOP_K);
  assert.equal(outcome.result.probabilities[0], 0.5);
  assert.equal(tab.jobs.length, 1);
  assert.deepEqual(tab.jobs[0].pixels, image(42), 'the tab got exactly the preprocessed bytes');

  // A batch of several images comes back row by row, in order.
  const batch = [1, 2, 3].map(job);
  batch.forEach((b) => hub.scheduler.submit(b));
  assert.deepEqual((await Promise.all(batch.map((b) => b.outcome()))).map(topClass), [701, 702, 703]);

  const [status] = hub.volunteers.list();
  assert.equal(status.state, 'ready');
  assert.equal(status.backend, 'webgpu');
  assert.deepEqual(status.adapter, { vendor: 'test', architecture: 'fake' });
  assert.equal(status.jobs, tab.jobs.length);
  assert.equal(status.images, 4);
  assert.equal(status.failures, 0);
  assert.equal(status.violations, 0);
});

test('heartbeats flow both ways and keep a tab connected', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const tab = await FakeVolunteer.connect(t, hub.url, 0);
  await joined(hub, tab);
  const firstSeen = hub.volunteers.list()[0].last_seen;
  await sleep(HEARTBEAT_MS * 5);
  assert.ok(tab.count('heartbeat') >= 3, `the hub sent ${tab.count('heartbeat')} heartbeats`);
  const [status] = hub.volunteers.list();
  assert.equal(status.state, 'ready', 'a tab that beats is never dropped');
  assert.ok(status.last_seen > firstSeen, 'last_seen moves with its heartbeats');
});

test('a silent tab is dropped after 3 beats and its job goes to another tab', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const silent = await FakeVolunteer.connect(t, hub.url, 100);
  const steady = await FakeVolunteer.connect(t, hub.url, 200);
  await joined(hub, silent, { per_image_ms: 1 });
  await joined(hub, steady, { per_image_ms: 50 });
  const left: string[] = [];
  hub.volunteers.on('left', (status) => left.push(status.id));

  silent.mode = 'hold';
  const j = job(7);
  hub.scheduler.submit(j);
  await waitFor(() => silent.jobs.length === 1, 'the job to reach the faster tab');
  const silentSince = performance.now();
  silent.stopHeartbeat();

  const outcome = await j.outcome();
  const waited = performance.now() - silentSince;
  assert.ok(outcome.ok);
  assert.equal(outcome.executor.id, steady.id);
  assert.equal(outcome.result.indices[0], 207);
  assert.equal(j.attempts, 2);
  // Its last heartbeat may have been up to half a beat before it fell silent.
  assert.ok(waited >= HEARTBEAT_MS * 2.5 - 20, `dropped after ${Math.round(waited)} ms, before 3 beats`);
  assert.ok(waited < HEARTBEAT_MS * 10, `dropped only after ${Math.round(waited)} ms`);
  assert.deepEqual(left, [silent.id]);
  await silent.closed;
  assert.deepEqual(hub.volunteers.list().map((v) => v.id), [steady.id]);
  assert.equal(hub.volunteers.stats().dropped_total, 1);
  assert.deepEqual(hub.scheduler.listExecutors().map((e) => e.id), [steady.id]);
});

test('garbage, bad shapes, binary frames and unknown job ids are refused; the hub keeps working', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const tab = await FakeVolunteer.connect(t, hub.url, 300);
  await joined(hub, tab);

  tab.ws.send('this is not json');
  tab.send({ type: 'launch_missiles' });
  tab.send({ type: 'result', job_id: 1 });
  tab.send({ type: 'hello', protocol: 99 });
  tab.send([1, 2, 3]);
  tab.ws.send(Buffer.from(JSON.stringify({ type: 'heartbeat', sent_at: 1 })), { binary: true }); // valid JSON, but binary
  tab.send({ type: 'result', job_id: 999_999, indices: [[1]], probabilities: [[1]], compute_ms: 1 });
  tab.send({ type: 'job_failed', job_id: 424_242, message: 'no such job' });
  await waitFor(() => hub.volunteers.list()[0].violations === 8, 'eight violations to be counted');

  const big = await FakeVolunteer.connect(t, hub.url, 0);
  await big.welcome();
  big.send({ type: 'heartbeat', sent_at: 0, padding: 'x'.repeat(MAX_VOLUNTEER_MESSAGE_BYTES) });
  assert.equal((await big.closed).code, 1009, 'an oversized message closes its socket');

  const j = job(5);
  hub.scheduler.submit(j);
  const outcome = await j.outcome();
  assert.ok(outcome.ok, 'the hub still serves');
  assert.equal(outcome.result.indices[0], 305);
  const [status] = hub.volunteers.list();
  assert.equal(status.state, 'ready');
  assert.equal(status.violations, 8);
  assert.equal(status.failures, 0);
  assert.equal(hub.volunteers.stats().violations_total, 9, 'the oversized message counts too');
});

test('messages before hello other than heartbeat are violations, and too many close the socket', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t, { maxViolations: 5 });
  const tab = await FakeVolunteer.connect(t, hub.url, 0);
  await tab.welcome();
  tab.send({ type: 'heartbeat', sent_at: 1 });
  tab.send({ type: 'result', job_id: 1, indices: [[1]], probabilities: [[1]], compute_ms: 1 });
  await waitFor(() => hub.volunteers.list()[0]?.violations === 1, 'one violation');
  assert.equal(hub.volunteers.list()[0].state, 'joining');
  for (let i = 0; i < 4; i++) tab.ws.send('{');
  const closed = await tab.closed;
  assert.equal(closed.code, CLOSE_VIOLATIONS);
  assert.equal(hub.volunteers.list().length, 0);
});

test("a tab cannot settle another tab's job", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const owner = await FakeVolunteer.connect(t, hub.url, 400);
  const thief = await FakeVolunteer.connect(t, hub.url, 500);
  await joined(hub, owner, { per_image_ms: 1 });
  await joined(hub, thief, { per_image_ms: 50 });
  owner.mode = 'hold';
  const j = job(9);
  hub.scheduler.submit(j);
  const frame = await waitFor(() => owner.jobs[0], 'the job to reach its owner');

  thief.result(frame); // the right job id, from the wrong tab
  owner.result({ ...frame, jobId: frame.jobId + 1 }); // the right tab, the wrong job id
  await waitFor(() => hub.volunteers.list().find((v) => v.id === thief.id)?.violations === 1, "the thief's violation");
  await waitFor(() => hub.volunteers.list().find((v) => v.id === owner.id)?.violations === 1, "the owner's violation");
  await sleep(20);
  assert.equal(j.settled, false, 'neither answer settled the job');

  owner.result(frame);
  const outcome = await j.outcome();
  assert.ok(outcome.ok);
  assert.equal(outcome.executor.id, owner.id);
  assert.equal(outcome.result.indices[0], 409);
  assert.equal(thief.jobs.length, 0);
});

test('a result with the wrong number of rows fails the batch, which another tab then runs', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const liar = await FakeVolunteer.connect(t, hub.url, 600);
  const honest = await FakeVolunteer.connect(t, hub.url, 700);
  await joined(hub, liar, { per_image_ms: 1 });
  await joined(hub, honest, { per_image_ms: 50 });
  liar.mode = 'hold';
  const j = job(3);
  hub.scheduler.submit(j);
  const frame = await waitFor(() => liar.jobs[0], 'the job to reach the liar');
  liar.send({
    type: 'result',
    job_id: frame.jobId,
    indices: [Array(TOP_K).fill(1), Array(TOP_K).fill(2)],
    probabilities: [Array(TOP_K).fill(0.1), Array(TOP_K).fill(0.1)],
    compute_ms: 1,
  });
  const outcome = await j.outcome();
  assert.ok(outcome.ok);
  assert.equal(outcome.executor.id, honest.id);
  assert.equal(outcome.result.indices[0], 703);
  const status = hub.volunteers.list().find((v) => v.id === liar.id);
  assert.equal(status?.violations, 1);
  assert.equal(status?.failures, 1);
  assert.equal(status?.state, 'resting', 'a tab whose batch failed takes no work for a while');
  assert.equal(liar.jobs.length, 1);
});

test('a hello with the wrong model hash is refused and closed', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const tab = await FakeVolunteer.connect(t, hub.url, 0);
  await tab.hello({ model_sha256: 'cd'.repeat(32) });
  const closed = await tab.closed;
  const refused = tab.messages.find((m) => m.type === 'refused');
  assert.ok(refused, 'the tab is told why');
  assert.match(refused.reason, new RegExp(MODEL_SHA));
  assert.equal(closed.code, CLOSE_REFUSED);
  assert.equal(hub.scheduler.listExecutors().length, 0);
  assert.equal(hub.volunteers.stats().refused_hellos, 1);
});

test('a tab without the token, or from a foreign origin, is refused at the upgrade', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t, { token: 's3cret-token' });
  assert.equal(await upgradeStatus(hub.url), 401);
  assert.equal(await upgradeStatus(`${hub.url}?token=wrong`), 401);
  assert.equal(await upgradeStatus(hub.url, { protocols: ['s3cret-tokex'] }), 401);
  assert.equal(await upgradeStatus(`${hub.url}?token=s3cret-token`), 101);
  assert.equal(await upgradeStatus(hub.url, { protocols: ['resnet-hub', 's3cret-token'] }), 101);

  const withToken = `${hub.url}?token=s3cret-token`;
  assert.equal(await upgradeStatus(withToken, { origin: 'https://evil.example' }), 403);
  assert.equal(await upgradeStatus(withToken, { origin: 'null' }), 403);
  assert.equal(await upgradeStatus(withToken, { origin: `http://localhost:5173` }), 101);
  assert.equal(await upgradeStatus(withToken, { origin: 'https://hub.example', headers: { host: 'hub.example' } }), 101, 'same host as Host');
  assert.deepEqual(hub.volunteers.stats().refused_upgrades, { origin: 2, token: 3, capacity: 0, stopping: 0 });
});

test('the allowed origins can be set', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t, { allowedOrigins: ['https://volunteers.example'] });
  assert.equal(await upgradeStatus(hub.url, { origin: 'https://volunteers.example' }), 101);
  assert.equal(await upgradeStatus(hub.url, { origin: 'http://volunteers.example' }), 403);
  assert.equal(await upgradeStatus(hub.url, { origin: 'http://localhost:5173' }), 403, 'the list replaces the localhost defaults');
});

test('quarantine re-queues the job in flight, tells the tab, and sends it no more jobs', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const suspect = await FakeVolunteer.connect(t, hub.url, 800);
  const other = await FakeVolunteer.connect(t, hub.url, 100);
  await joined(hub, suspect, { per_image_ms: 1 });
  await joined(hub, other, { per_image_ms: 50 });
  const quarantined: string[] = [];
  hub.volunteers.on('quarantined', (status, reason) => quarantined.push(`${status.id}: ${reason}`));

  suspect.mode = 'hold';
  const first = job(1);
  hub.scheduler.submit(first);
  const frame = await waitFor(() => suspect.jobs[0], 'the job to reach the suspect');
  assert.equal(hub.volunteers.quarantine(suspect.id, 'disagreed with the local worker'), true);

  const outcome = await first.outcome();
  assert.ok(outcome.ok);
  assert.equal(outcome.executor.id, other.id, 'the job in flight was re-queued at once');
  const told = await waitFor(() => suspect.messages.find((m) => m.type === 'quarantined'), 'the quarantined message');
  assert.equal(told.reason, 'disagreed with the local worker');
  assert.deepEqual(quarantined, [`${suspect.id}: disagreed with the local worker`]);

  suspect.result(frame); // too late, and harmless
  const more = [2, 3, 4].map(job);
  more.forEach((m) => hub.scheduler.submit(m));
  const outcomes = await Promise.all(more.map((m) => m.outcome()));
  assert.deepEqual(outcomes.map((o) => (o.ok ? o.executor.id : o.error.code)), [other.id, other.id, other.id]);
  assert.equal(suspect.jobs.length, 1, 'no job after quarantine');
  assert.deepEqual(hub.scheduler.listExecutors().map((e) => e.id), [other.id], 'out of the scheduler');

  const status = hub.volunteers.list().find((v) => v.id === suspect.id);
  assert.equal(status?.state, 'quarantined');
  assert.equal(status?.quarantine_reason, 'disagreed with the local worker');
  assert.equal(status?.violations, 0, 'a late answer is not a violation');
  assert.equal(hub.volunteers.quarantine('volunteer-nobody', 'x'), false);
});

test('a failed or timed-out batch is re-run elsewhere, and a tab that keeps failing is quarantined', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t, { jobTimeout: { minMs: 150, factor: 1 }, maxConsecutiveFailures: 2, failureRestMs: 50 });
  const flaky = await FakeVolunteer.connect(t, hub.url, 900);
  const other = await FakeVolunteer.connect(t, hub.url, 100);
  await joined(hub, flaky, { per_image_ms: 1 });
  await joined(hub, other, { per_image_ms: 50 });
  other.answerDelayMs = 30; // so that, once measured, it is still slower than the flaky tab claims to be
  flaky.mode = 'hold';

  const failed = job(1);
  hub.scheduler.submit(failed);
  const frame = await waitFor(() => flaky.jobs[0], 'the first job');
  flaky.send({ type: 'job_failed', job_id: frame.jobId, message: 'device lost' });
  const first = await failed.outcome();
  assert.ok(first.ok);
  assert.equal(first.executor.id, other.id, 'the failing tab rests; the batch goes to the other');
  await waitFor(() => hub.volunteers.list().find((v) => v.id === flaky.id && v.state === 'ready'), 'the rest to end');

  const timedOut = job(2);
  hub.scheduler.submit(timedOut);
  await waitFor(() => flaky.jobs[1], 'the second job');
  const second = await timedOut.outcome();
  assert.ok(second.ok);
  assert.equal(second.executor.id, other.id);

  const status = await waitFor(() => hub.volunteers.list().find((v) => v.id === flaky.id && v.state === 'quarantined'), 'quarantine');
  assert.equal(status.failures, 2);
  assert.match(status.quarantine_reason ?? '', /2 batches in a row failed/);
  await waitFor(() => flaky.messages.find((m) => m.type === 'quarantined'), 'the quarantined message');
});

test('stopAll tells every tab to stop, closes them, and refuses new ones', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await startTestHub(t);
  const tab = await FakeVolunteer.connect(t, hub.url, 0);
  await joined(hub, tab);
  await hub.volunteers.stopAll('maintenance');
  const closed = await tab.closed;
  assert.equal(closed.code, CLOSE_STOP);
  const stop = tab.messages.find((m) => m.type === 'stop');
  assert.equal(stop?.type === 'stop' && stop.reason, 'maintenance');
  assert.equal(hub.volunteers.list().length, 0);
  assert.equal(hub.scheduler.listExecutors().length, 0);
  assert.equal(await upgradeStatus(hub.url), 503);
});
