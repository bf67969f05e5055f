/**
 * Start-up and shut-down of the real hub: not ready until warm, and on SIGTERM every
 * request already accepted is answered before the process exits 0.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as zmq from 'zeromq';
import { launchHub } from '../../kit/hub-process.ts';
import { payloadOf, photo } from '../../kit/zmq-clients.ts';

test('/readyz is 503 until every worker is warm, then 200', async () => {
  const hub = await launchHub({ untilListening: true });
  try {
    const early = await fetch(`${hub.http}/readyz`);
    assert.equal(early.status, 503);
    assert.equal((await fetch(`${hub.http}/healthz`)).status, 200);
    await hub.ready;
    assert.equal((await fetch(`${hub.http}/readyz`)).status, 200);
  } finally {
    await hub.stop();
  }
});

test('SIGTERM answers every request in flight, then exits 0', async () => {
  const hub = await launchHub();
  const socket = new zmq.Dealer({ receiveTimeout: 60_000, linger: 0 });
  socket.connect(hub.zmq);
  try {
    const sent = 6;
    for (let i = 0; i < sent; i++) await socket.send(payloadOf(photo('coffee'), { request_id: String(i) }));
    // Let the requests reach the hub, then ask it to stop while they are queued and running.
    await new Promise((resolve) => setTimeout(resolve, 300));
    hub.child.kill('SIGTERM');
    const replies: Array<{ request_id?: string; preds?: string; error?: { code: string } }> = [];
    for (let i = 0; i < sent; i++) replies.push(JSON.parse((await socket.receive())[0].toString()));
    assert.deepEqual(replies.map((r) => r.request_id).sort(), ['0', '1', '2', '3', '4', '5']);
    for (const reply of replies) assert.ok(reply.preds, `request ${reply.request_id} got a result: ${JSON.stringify(reply.error)}`);
    assert.equal(await hub.exited, 0);
  } finally {
    socket.close();
    await hub.stop();
  }
});

test('SIGTERM during warm-up (nothing accepted yet) exits 0 at once', async () => {
  const hub = await launchHub({ untilListening: true });
  hub.ready.catch(() => {}); // it never becomes ready: that is the point
  const started = performance.now();
  hub.child.kill('SIGTERM');
  assert.equal(await hub.exited, 0);
  assert.ok(performance.now() - started < 5000, 'no grace period to wait out');
  assert.ok(hub.logs.some((entry) => entry.msg === 'stopped before the hub was ready'));
});
