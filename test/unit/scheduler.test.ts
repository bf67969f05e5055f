/**
 * The scheduler's decisions, with executors whose timing the test controls: arrival order,
 * earliest expected completion, batching, re-queue on failure, deadlines, exactly one outcome.
 * (The real worker threads are exercised end to end in the front tests.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BatchResult, ModelInput, Executor } from '../../server/executors/executor.ts';
import { Job } from '../../server/scheduler/job.ts';
import type { JobOutcome } from '../../server/scheduler/job.ts';
import { Scheduler } from '../../server/scheduler/scheduler.ts';
import { createVerifier } from '../../server/scheduler/verifier.ts';
import type { ModelInfo } from '../../shared/protocol/classify.ts';
import { ServiceError } from '../../shared/protocol/errors.ts';

/** An executor that answers each image with its first byte as the top class, after a delay. */
class TimedExecutor implements Executor {
  proven = true;
  kind: 'local' | 'volunteer' = 'local';
  readonly engine = 'test';
  modelSha256 = 'model-a';
  /** Takes this long whatever it promises, to play a straggler. */
  actualMs: number | undefined;
  /** Adds this to every answer's class, to play a liar. */
  lieBy = 0;
  readonly capacity = 1;
  available = true;
  failNext = 0;
  batches: number[][] = [];
  private readonly listeners: Array<() => void> = [];
  constructor(
    readonly id: string,
    readonly perImageMs: number,
    readonly maxBatch = 1,
  ) {}
  expectedServiceMs(batchSize: number): number {
    return this.perImageMs * batchSize;
  }
  onAvailabilityChange(listener: () => void): void {
    this.listeners.push(listener);
  }
  get returnsAllClasses(): boolean {
    return this.kind === 'local';
  }
  get takesTensors(): boolean {
    return this.kind === 'local';
  }
  async run(images: readonly ModelInput[], _reference?: readonly boolean[], allClasses?: readonly boolean[]): Promise<BatchResult> {
    this.batches.push(images.map((image) => image[0]));
    await new Promise((resolve) => setTimeout(resolve, this.actualMs ?? this.perImageMs * images.length));
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('simulated executor failure');
    }
    const results = images.map((image) => ({ indices: [image[0] + this.lieBy], probabilities: [1] }));
    return { results, inferenceMs: 1, ...(allClasses ? { allClasses: allClasses.map((wanted, i) => (wanted ? Float32Array.of(images[i][0]) : undefined)) } : {}) };
  }
}

function job(tag: number, options: { deadlineAt?: number; offload?: boolean } = {}): Job {
  return new Job({ id: `j${tag}`, image: Uint8Array.of(tag), offload: options.offload ?? true, ...options });
}

function topClass(outcome: JobOutcome): number | string {
  return outcome.ok ? outcome.result.indices[0] : outcome.error.code;
}

function servedBy(outcome: JobOutcome): string {
  return outcome.ok ? outcome.executor.id : outcome.error.code;
}

function volunteer(id: string, perImageMs: number): TimedExecutor {
  const executor = new TimedExecutor(id, perImageMs);
  executor.kind = 'volunteer';
  return executor;
}

test('jobs run in arrival order and each gets its own result', async () => {
  const scheduler = new Scheduler();
  const executor = new TimedExecutor('a', 2);
  scheduler.addExecutor(executor);
  const jobs = [1, 2, 3, 4, 5].map((tag) => job(tag));
  jobs.forEach((j) => scheduler.submit(j));
  const outcomes = await Promise.all(jobs.map((j) => j.outcome()));
  assert.deepEqual(outcomes.map(topClass), [1, 2, 3, 4, 5]);
  assert.deepEqual(executor.batches, [[1], [2], [3], [4], [5]]);
});

test('a waiting batch is taken whole, up to the executor batch size', async () => {
  const scheduler = new Scheduler();
  const executor = new TimedExecutor('a', 2, 4);
  const jobs = [1, 2, 3, 4, 5, 6].map((tag) => job(tag));
  jobs.forEach((j) => scheduler.submit(j)); // queued before any executor exists
  scheduler.addExecutor(executor);
  await Promise.all(jobs.map((j) => j.outcome()));
  assert.deepEqual(executor.batches, [[1, 2, 3, 4], [5, 6]]);
});

test('work goes to the executor expected to finish first, not just any free one', async () => {
  const scheduler = new Scheduler();
  const fast = new TimedExecutor('fast', 5);
  const slow = new TimedExecutor('slow', 200);
  scheduler.addExecutor(fast);
  scheduler.addExecutor(slow);
  const jobs = [1, 2, 3].map((tag) => job(tag));
  jobs.forEach((j) => scheduler.submit(j));
  const outcomes = await Promise.all(jobs.map((j) => j.outcome()));
  // Waiting 5 ms for the fast one beats starting 200 ms of work on the slow one.
  assert.deepEqual(slow.batches, []);
  assert.deepEqual(outcomes.map((o) => (o.ok ? o.executor.id : '')), ['fast', 'fast', 'fast']);
});

test('a failed batch is re-queued at the front; a job fails after its attempts', async () => {
  const scheduler = new Scheduler({ maxAttempts: 2 });
  const executor = new TimedExecutor('a', 1);
  executor.failNext = 1;
  scheduler.addExecutor(executor);
  const first = job(1);
  const second = job(2);
  scheduler.submit(first);
  scheduler.submit(second);
  assert.deepEqual((await Promise.all([first.outcome(), second.outcome()])).map(topClass), [1, 2]);
  assert.deepEqual(executor.batches, [[1], [1], [2]]);

  executor.failNext = 2;
  const doomed = job(3);
  scheduler.submit(doomed);
  const outcome = await doomed.outcome();
  assert.equal(topClass(outcome), 'internal');
});

test('a job whose deadline passes while queued is answered timeout and never run', async () => {
  const scheduler = new Scheduler();
  const executor = new TimedExecutor('a', 40);
  scheduler.addExecutor(executor);
  const blocker = job(1);
  const late = job(2, { deadlineAt: performance.now() + 10 });
  scheduler.submit(blocker);
  scheduler.submit(late);
  assert.equal(topClass(await late.outcome()), 'timeout');
  await blocker.outcome();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(executor.batches, [[1]]);
});

test('a job settles exactly once, whatever arrives later', async () => {
  const j = job(1);
  assert.equal(j.settle({ ok: true, result: { indices: [1], probabilities: [1] }, executor: { kind: 'local', id: 'x', engine: 'e' }, queueMs: 0, inferenceMs: 0 }), true);
  assert.equal(j.settle({ ok: true, result: { indices: [2], probabilities: [1] }, executor: { kind: 'local', id: 'y', engine: 'e' }, queueMs: 0, inferenceMs: 0 }), false);
  assert.equal(topClass(await j.outcome()), 1);
});

test('--offload off keeps every job local; a job with offload false stays local under auto', async () => {
  for (const [mode, offload] of [['off', true], ['auto', false]] as const) {
    const scheduler = new Scheduler({ offload: mode });
    const local = new TimedExecutor('local', 50);
    const tab = volunteer('tab', 1);
    scheduler.addExecutor(local);
    scheduler.addExecutor(tab);
    const jobs = [1, 2, 3].map((tag) => job(tag, { offload }));
    jobs.forEach((j) => scheduler.submit(j));
    const outcomes = await Promise.all(jobs.map((j) => j.outcome()));
    assert.deepEqual(outcomes.map(servedBy), ['local', 'local', 'local'], mode);
    assert.deepEqual(tab.batches, []);
  }
});

test('--offload prefer fills a free volunteer first, even when a local worker would be faster', async () => {
  const scheduler = new Scheduler({ offload: 'prefer' });
  scheduler.addExecutor(new TimedExecutor('local', 1));
  scheduler.addExecutor(volunteer('tab', 30));
  const first = job(1);
  scheduler.submit(first);
  assert.equal(servedBy(await first.outcome()), 'tab');
});

test('a batch far past its expected time is hedged onto an idle executor; the first answer wins', async () => {
  const scheduler = new Scheduler({ hedgeAfter: () => 20 });
  const straggler = new TimedExecutor('straggler', 5);
  straggler.actualMs = 400;
  scheduler.addExecutor(straggler);
  const slow = job(7);
  scheduler.submit(slow); // goes to the straggler: it promises 5 ms
  const backup = new TimedExecutor('backup', 50);
  scheduler.addExecutor(backup);
  const hedges: string[] = [];
  scheduler.on('hedged', (_jobs, from, to) => hedges.push(`${from.id}->${to.id}`));
  const started = performance.now();
  const outcome = await slow.outcome();
  assert.equal(servedBy(outcome), 'backup');
  assert.equal(topClass(outcome), 7);
  assert.ok(performance.now() - started < 300, 'answered before the straggler finished');
  assert.deepEqual(hedges, ['straggler->backup']);
});

test('with --verify-fraction 1 a lying volunteer is caught and its answer replaced by the local one', async () => {
  const scheduler = new Scheduler({ offload: 'prefer' });
  const verdicts: Array<[string, boolean]> = [];
  scheduler.setResultReviewer(createVerifier(scheduler, { fraction: 1, onVerdict: (e, agreed) => verdicts.push([e.id, agreed]) }));
  const local = new TimedExecutor('local', 5);
  const liar = volunteer('liar', 5);
  liar.lieBy = 100;
  const honest = volunteer('honest', 5);
  scheduler.addExecutor(local);
  scheduler.addExecutor(liar);
  const lied = job(3);
  scheduler.submit(lied);
  const outcome = await lied.outcome();
  assert.equal(topClass(outcome), 3, 'the reply carries the right class');
  assert.equal(servedBy(outcome), 'local');
  assert.deepEqual(verdicts, [['liar', false]]);

  scheduler.removeExecutor(liar);
  scheduler.addExecutor(honest);
  const fine = job(4);
  scheduler.submit(fine);
  const good = await fine.outcome();
  assert.equal(servedBy(good), 'honest');
  assert.deepEqual(verdicts.at(-1), ['honest', true]);
});

test('a model switch: the running job finishes on the old model, waiting ones move to the new, pinned ones stay', async () => {
  const modelA = { name: 'resnet50', weights: 'untrained', sha256: 'model-a' } as ModelInfo;
  const modelB = { name: 'resnet50', weights: 'imagenet', sha256: 'model-b' } as ModelInfo;
  const scheduler = new Scheduler();
  scheduler.switchModel(modelA);
  const oldWorker = new TimedExecutor('old', 20);
  const newWorker = new TimedExecutor('new', 5);
  newWorker.modelSha256 = 'model-b';
  scheduler.addExecutor(oldWorker);
  scheduler.addExecutor(newWorker); // warm, but serves no job of model A
  const jobs = [1, 2, 3].map((tag) => job(tag));
  jobs.forEach((j) => scheduler.submit(j));
  const pinned = new Job({ id: 'check', image: Uint8Array.of(9), offload: false, model: modelA, pinned: true });
  scheduler.submit(pinned);
  assert.equal(scheduler.jobsFor('model-a'), 4, 'all four are model A before the switch');
  scheduler.switchModel(modelB);
  const after = job(4);
  scheduler.submit(after);
  const outcomes = await Promise.all([...jobs, pinned, after].map((j) => j.outcome()));
  const seen = outcomes.map((o) => (o.ok ? `${o.executor.id}:${o.model?.sha256}` : o.error.code));
  assert.deepEqual(seen, ['old:model-a', 'new:model-b', 'new:model-b', 'old:model-a', 'new:model-b']);
  assert.equal(scheduler.jobsFor('model-a'), 0);
});

test('after a switch, a pinned job whose model no executor serves is failed on request', async () => {
  const modelA = { name: 'resnet50', weights: 'untrained', sha256: 'model-a' } as ModelInfo;
  const scheduler = new Scheduler();
  scheduler.switchModel({ ...modelA, sha256: 'model-b' });
  const pinned = new Job({ id: 'check', image: Uint8Array.of(9), offload: false, model: modelA, pinned: true });
  scheduler.submit(pinned);
  scheduler.failPinned('model-a', new ServiceError('internal', 'the model it checks is gone'));
  const outcome = await pinned.outcome();
  assert.equal(outcome.ok ? 'ok' : outcome.error.code, 'internal');
});

test('a busy executor past its expected end (a frozen tab) does not hold up the queue while others are free', { timeout: 10_000 }, async () => {
  const scheduler = new Scheduler();
  const frozen = volunteer('frozen', 1);
  frozen.actualMs = 1500;
  scheduler.addExecutor(frozen);
  const first = job(1);
  scheduler.submit(first); // the frozen tab promises 1 ms
  for (const id of ['v1', 'v2', 'v3']) scheduler.addExecutor(volunteer(id, 5));
  await new Promise((resolve) => setTimeout(resolve, 30)); // now well past its expected end
  const started = performance.now();
  const rest = [2, 3, 4, 5, 6].map((tag) => job(tag));
  rest.forEach((j) => scheduler.submit(j));
  const outcomes = await Promise.all(rest.map((j) => j.outcome()));
  assert.ok(performance.now() - started < 500, `answered without waiting for the frozen tab (${Math.round(performance.now() - started)} ms)`);
  assert.ok(outcomes.every((o) => o.ok && servedBy(o) !== 'frozen'));
  await first.outcome();
});

test('a late batch is hedged only onto a proven executor: never onto a tab still on its claim', async () => {
  const scheduler = new Scheduler({ hedgeAfter: () => 20 });
  const straggler = volunteer('straggler', 5);
  straggler.actualMs = 400;
  scheduler.addExecutor(straggler);
  const slow = job(7);
  scheduler.submit(slow);
  const newcomer = volunteer('newcomer', 1);
  newcomer.proven = false;
  scheduler.addExecutor(newcomer);
  scheduler.addExecutor(new TimedExecutor('local', 40));
  const hedges: string[] = [];
  scheduler.on('hedged', (_jobs, from, to) => hedges.push(`${from.id}->${to.id}`));
  const outcome = await slow.outcome();
  assert.equal(servedBy(outcome), 'local');
  assert.deepEqual(hedges, ['straggler->local']);
});

test('volunteers failing never use up a job\'s tries while a local worker can compute it', async () => {
  const scheduler = new Scheduler({ maxAttempts: 3 });
  const tabs = ['t1', 't2', 't3', 't4'].map((id) => {
    const tab = volunteer(id, 1);
    tab.failNext = 1000; // a broken GPU: every batch fails
    return tab;
  });
  for (const tab of tabs) scheduler.addExecutor(tab);
  scheduler.addExecutor(new TimedExecutor('local', 30));
  const j = job(9);
  scheduler.submit(j);
  const outcome = await j.outcome();
  assert.equal(servedBy(outcome), 'local');
  assert.equal(topClass(outcome), 9);
  const volunteerTries = tabs.reduce((sum, tab) => sum + tab.batches.length, 0);
  assert.equal(volunteerTries, 2, 'two tries on volunteers, then only local workers');
});

test('a job that wants every class’s probability runs only where they are computed (a local worker), and gets them', async () => {
  const scheduler = new Scheduler({ offload: 'prefer' });
  const fastTab = volunteer('tab', 1);
  const local = new TimedExecutor('local', 20);
  scheduler.addExecutor(fastTab);
  scheduler.addExecutor(local);
  const wantsAll = new Job({ id: 'all', image: Uint8Array.of(7), offload: true, allClasses: true });
  const plain = job(8);
  scheduler.submit(wantsAll);
  scheduler.submit(plain);
  const [all, other] = await Promise.all([wantsAll.outcome(), plain.outcome()]);
  assert.equal(servedBy(all), 'local', 'never the tab, fast and free as it is');
  assert.deepEqual(all.ok ? Array.from(all.allClasses ?? []) : [], [7]);
  assert.equal(servedBy(other), 'tab');
  assert.equal(other.ok ? other.allClasses : 'failed', undefined, 'a job that did not ask gets none');
});

test('an image sent as the model’s float input runs only where such input is taken (a local worker)', async () => {
  const scheduler = new Scheduler({ offload: 'prefer' });
  const fastTab = volunteer('tab', 1);
  const local = new TimedExecutor('local', 20);
  scheduler.addExecutor(fastTab);
  scheduler.addExecutor(local);
  const tensor = new Job({ id: 'tensor', image: Float32Array.of(5), offload: true });
  const plain = job(6);
  scheduler.submit(tensor);
  scheduler.submit(plain);
  const [fromTensor, fromFile] = await Promise.all([tensor.outcome(), plain.outcome()]);
  assert.equal(servedBy(fromTensor), 'local', 'never the tab, fast and free as it is');
  assert.equal(topClass(fromTensor), 5);
  assert.equal(servedBy(fromFile), 'tab');
});
