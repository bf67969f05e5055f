/**
 * The one writer per ZeroMQ socket (server/front/socket-writer.ts), on real sockets over
 * loopback: thousands of replies written at once arrive in order and none throws (zeromq.js
 * alone throws EBUSY here); a reply for a peer that is gone is dropped and counted, and the
 * replies of the peer still there are not held up.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as zmq from 'zeromq';
import { SocketWriter } from '../../server/front/socket-writer.ts';
import type { DropReason } from '../../server/front/socket-writer.ts';

async function routerAndDealer(): Promise<{ router: zmq.Router; dealer: zmq.Dealer; identity: Buffer }> {
  const router = new zmq.Router({ linger: 0, sendTimeout: 0, mandatory: true });
  await router.bind('tcp://127.0.0.1:*');
  const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: 10_000, receiveHighWaterMark: 0 });
  dealer.connect(router.lastEndpoint!);
  await dealer.send('hello');
  const [identity] = await router.receive();
  return { router, dealer, identity };
}

test('bare zeromq.js: overlapping sends on one ROUTER throw EBUSY synchronously (what the writer prevents)', async () => {
  const router = new zmq.Router({ linger: 0 });
  await router.bind('tcp://127.0.0.1:*');
  const dealer = new zmq.Dealer({ linger: 0 });
  dealer.connect(router.lastEndpoint!);
  await dealer.send('hello');
  const [identity] = await router.receive();
  let thrown: unknown;
  try {
    for (let i = 0; i < 5000; i++) void router.send([identity, `reply ${i}`]).catch(() => undefined);
  } catch (error) {
    thrown = error;
  }
  router.close();
  dealer.close();
  assert.equal((thrown as { code?: string } | undefined)?.code, 'EBUSY', 'the failure mode exists without the writer');
});

test('900 replies written at once (under the high-water mark): none throws, all arrive, in order', async () => {
  const { router, dealer, identity } = await routerAndDealer();
  const drops: DropReason[] = [];
  const writer = new SocketWriter(router, { onDrop: (reason) => drops.push(reason) });
  for (let i = 0; i < 900; i++) writer.write([identity, `reply ${i}`]);
  await writer.flushed();
  for (let i = 0; i < 900; i++) assert.equal((await dealer.receive())[0].toString(), `reply ${i}`);
  assert.deepEqual(drops, []);
  assert.equal(writer.sent, 900);
  router.close();
  dealer.close();
});

test('5000 replies at once to one peer: what its queue takes arrives in order, the rest is dropped as peer_full, nothing throws', async () => {
  const { router, dealer, identity } = await routerAndDealer();
  const writer = new SocketWriter(router);
  for (let i = 0; i < 5000; i++) writer.write([identity, `reply ${i}`]);
  await writer.flushed();
  const { peer_full: full } = writer.drops();
  assert.equal(writer.sent + full, 5000, 'every reply sent or counted');
  assert.ok(writer.sent >= 1000, `at least the high-water mark's worth sent (${writer.sent})`);
  let previous = -1;
  for (let i = 0; i < writer.sent; i++) {
    const n = Number((await dealer.receive())[0].toString().split(' ')[1]);
    assert.ok(n > previous, 'in order');
    previous = n;
  }
  router.close();
  dealer.close();
});

test('a peer that is gone: its replies are dropped and counted, the other peer gets all of its own', async () => {
  const { router, dealer, identity } = await routerAndDealer();
  const writer = new SocketWriter(router);
  const gone = Buffer.from('no-such-peer');
  for (let i = 0; i < 100; i++) {
    writer.write([gone, `lost ${i}`]);
    writer.write([identity, `kept ${i}`]);
  }
  await writer.flushed();
  for (let i = 0; i < 100; i++) assert.equal((await dealer.receive())[0].toString(), `kept ${i}`);
  assert.equal(writer.drops().peer_gone, 100);
  router.close();
  dealer.close();
});

test('a full queue and a closed socket drop instead of growing or throwing', async () => {
  const { router, dealer, identity } = await routerAndDealer();
  const writer = new SocketWriter(router, { maxQueued: 10 });
  for (let i = 0; i < 50; i++) writer.write([identity, `reply ${i}`]);
  assert.ok(writer.queued <= 10);
  assert.ok(writer.drops().queue_full >= 39, `queue_full ${writer.drops().queue_full}`);
  await writer.flushed();
  router.close();
  writer.write([identity, 'after close']);
  assert.equal(writer.drops().socket_closed, 1);
  dealer.close();
});
