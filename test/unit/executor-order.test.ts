/** The dashboard's order of executors and its summary of volunteers (pure functions, no DOM). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ExecutorStatus, VolunteerStatus } from '../../shared/protocol/status.ts';
import { orderExecutors, summarizeVolunteers } from '../../web/src/dashboard/executor-order.ts';

function volunteer(id: string, fields: Partial<VolunteerStatus>): VolunteerStatus {
  return { id, kind: 'volunteer', state: 'ready', busy: false, jobs: 0, images: 0, failures: 0, violations: 0, connected_at: '', last_seen: '', ...fields };
}

const local = { id: 'local-1', kind: 'local', state: 'ready', engine: 'onnx', threads: 1, busy: false, per_image_ms: 40, warmup_ms: 1, batches: 0, images: 0, restarts: 0 } as ExecutorStatus;

test('local workers first, then the volunteers worth a look: quarantined, backing off, the troubled, newcomers, paused, then the trusted by speed', () => {
  const executors: ExecutorStatus[] = [
    volunteer('fast', { standing: 'trusted', per_image_ms: 5 }),
    volunteer('slow', { standing: 'trusted', per_image_ms: 50 }),
    volunteer('late', { standing: 'trusted', per_image_ms: 3, late_jobs: 4 }),
    volunteer('new', { standing: 'probation', per_image_ms: 9 }),
    volunteer('joining', { state: 'joining' }),
    volunteer('resting', { standing: 'backing_off', state: 'resting', failures: 2 }),
    volunteer('liar', { standing: 'quarantined', state: 'quarantined' }),
    volunteer('hidden', { standing: 'paused', state: 'paused', paused_reason: 'hidden' }),
    local,
  ];
  assert.deepEqual(orderExecutors(executors).map((e) => e.id), ['local-1', 'liar', 'resting', 'new', 'hidden', 'late', 'fast', 'slow', 'joining']);
});

test('the summary counts volunteers by standing and gives the trusted ones’ speed and the hedge races', () => {
  const executors: ExecutorStatus[] = [
    local,
    ...Array.from({ length: 300 }, (_, i) => volunteer(`t${i}`, { standing: 'trusted', per_image_ms: 10 + i, hedges_won: 1 })),
    volunteer('p', { standing: 'probation', late_jobs: 2, hedges_lost: 2 }),
    volunteer('j', { state: 'joining' }),
  ];
  const summary = summarizeVolunteers(executors);
  assert.equal(summary.connected, 302);
  assert.equal(summary.joining, 1);
  assert.deepEqual(summary.byStanding, { probation: 1, trusted: 300, backing_off: 0, paused: 0, quarantined: 0 });
  assert.deepEqual(summary.trustedSpeed, { median: 159, fastest: 10, slowest: 309 });
  assert.equal(summary.lateJobs, 2);
  assert.equal(summary.hedgesWon, 300);
  assert.equal(summary.hedgesLost, 2);
});
