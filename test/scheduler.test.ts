/**
 * The scheduler's decisions, with executors whose timing the test controls: arrival order,
 * earliest expected completion, batching, re-queue on failure, deadlines, exactly one outcome.
 * (The real worker threads are exercised end to end in the front tests.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BatchResult, Executor } from '../server/executors/executor.ts';
import { Job } from '../server/scheduler/job.ts';
import type { JobOutcome } from '../server/scheduler/job.ts';
import { Scheduler } from '../server/scheduler/scheduler.ts';

/** An executor that answers each image with its first byte as the top class, after a delay. */
class TimedExecutor implements Executor {
  readonly kind = 'local';
  readonly engine = 'test';
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
  async run(images: readonly Uint8Array[]): Promise<BatchResult> {
    this.batches.push(images.map((image) => image[0]));
    await new Promise((resolve) => setTimeout(resolve, this.perImageMs * images.length));
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('simulated executor failure');
    }
    return { results: images.map((image) => ({ indices: [image[0]], probabilities: [1] })), inferenceMs: 1 };
  }
}

function job(tag: number, options: { deadlineAt?: number; offload?: boolean } = {}): Job {
  return new Job({ id: `j${tag}`, image: Uint8Array.of(tag), offload: options.offload ?? true, ...options });
}

function topClass(outcome: JobOutcome): number | string {
  return outcome.ok ? outcome.result.indices[0] : outcome.error.code;
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
