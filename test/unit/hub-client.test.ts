/**
 * The client library's retry rules against scripted fake hubs (ROUTER sockets in this process,
 * on 127.0.0.N): a refusal goes to another hub, a silent hub's late answer is dropped rather
 * than handed over twice, a name re-resolved adds and retires hubs, and deadlines hold.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as zmq from 'zeromq';
import { HubClient } from '../../client/index.ts';
import { parseTcpEndpoint, splitEndpoints } from '../../client/endpoints.ts';

type Script = (request: { request_id: string; deadline_ms: number }, n: number) => object | 'silent' | { lateMs: number; reply: object };

const routers: zmq.Router[] = [];
after(() => {
  for (const router of routers) router.close();
});

/** A fake hub on 127.0.0.N that answers each request as `script` says. */
async function fakeHub(n: number, port: number | '*', id: string, script: Script): Promise<{ endpoint: string; port: number; received: string[] }> {
  const router = new zmq.Router({ linger: 0 });
  routers.push(router);
  await router.bind(`tcp://127.0.0.${n}:${port}`);
  const received: string[] = [];
  void (async () => {
    try {
      for await (const [identity, body] of router) {
        const request = JSON.parse(body.toString()) as { request_id: string; deadline_ms: number };
        received.push(request.request_id);
        const answer = script(request, received.length);
        if (answer === 'silent') continue;
        const { lateMs, reply } = 'lateMs' in answer ? (answer as { lateMs: number; reply: object }) : { lateMs: 0, reply: answer };
        setTimeout(() => {
          // A closed socket throws at once rather than rejecting: the test may be over by now.
          if (!router.closed) void router.send([identity, JSON.stringify({ ...reply, request_id: request.request_id, hub: { id } })]).catch(() => {});
        }, lateMs);
      }
    } catch {
      // closed
    }
  })();
  const endpoint = router.lastEndpoint!;
  return { endpoint, port: Number(parseTcpEndpoint(endpoint)!.port), received };
}

const RESULT = { preds: 'tabby : 0.5', predictions: [], executor: { kind: 'local', id: 'local-1', engine: 'onnx' }, model: {}, timing: {} };
const refuse = (code: string) => ({ error: { code, message: code } });

test('endpoints: comma lists, IPv6, and bad input', () => {
  assert.deepEqual(splitEndpoints(['tcp://a:1,tcp://b:1', ' tcp://a:1 ']), ['tcp://a:1', 'tcp://b:1']);
  assert.deepEqual(parseTcpEndpoint('tcp://[::1]:5576'), { host: '::1', port: '5576' });
  assert.throws(() => new HubClient({ endpoints: 'http://a:1' }), /bad hub endpoint/);
});

test('an overloaded or shutting-down hub: the request goes to another; the caller gets its own id back', async () => {
  const busy = await fakeHub(1, '*', 'busy', () => refuse('overloaded'));
  const leaving = await fakeHub(2, busy.port, 'leaving', () => refuse('shutting_down'));
  const good = await fakeHub(3, busy.port, 'good', () => RESULT);
  const client = new HubClient({ endpoints: [busy.endpoint, leaving.endpoint, good.endpoint] });
  try {
    await client.ready();
    await new Promise((resolve) => setTimeout(resolve, 100)); // every hub connected
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => client.classify(Buffer.from('x'), { requestId: `mine-${i}` })));
    for (const [i, result] of results.entries()) {
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.reply.hub.id, 'good');
      assert.equal(result.reply.request_id, `mine-${i}`);
    }
    const stats = client.stats();
    assert.ok(stats.resends > 0);
    assert.equal(stats.hubs.find((h) => h.hubId === 'leaving')?.mode, 'draining');
  } finally {
    await client.close();
  }
});

test('a silent hub: another answers after the per-try timeout; the silent one\'s late answer is dropped, not handed over twice', async () => {
  const slow = await fakeHub(1, '*', 'slow', () => ({ lateMs: 600, reply: RESULT }));
  const client = new HubClient({ endpoints: [slow.endpoint], perTryTimeoutMs: 200 });
  try {
    await client.ready();
    const result = await client.classify(Buffer.from('x'), { requestId: 'only-once' });
    assert.ok(result.ok);
    assert.equal(result.reply.hub.id, 'slow', 'with no other hub, the silent one is waited for');
    assert.equal(slow.received.length, 1, 'never sent twice to the same hub');
  } finally {
    await client.close();
  }

  const a = await fakeHub(3, '*', 'a-silent', () => ({ lateMs: 800, reply: RESULT }));
  const b = await fakeHub(4, a.port, 'b-quick', () => RESULT);
  const two = new HubClient({ endpoints: [a.endpoint, b.endpoint], perTryTimeoutMs: 200 });
  try {
    await two.ready();
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Fewest outstanding, ties rotating: of 4 requests, two go first to the silent hub.
    const results = await Promise.all(Array.from({ length: 4 }, (_, i) => two.classify(Buffer.from('x'), { requestId: String(i) })));
    assert.ok(results.every((r) => r.ok && r.reply.hub.id === 'b-quick'), JSON.stringify(results.map((r) => r.ok && r.reply.hub.id)));
    await new Promise((resolve) => setTimeout(resolve, 900)); // the silent hub's answers arrive
    const silent = two.stats().hubs.find((h) => h.hubId === 'a-silent')!;
    assert.equal(silent.silences, 2);
    assert.equal(silent.dropped, 2, 'its late answers were dropped');
  } finally {
    await two.close();
  }
});

test('a name re-resolved: new addresses get connections, vanished ones are retired', async () => {
  const one = await fakeHub(1, '*', 'one', () => RESULT);
  const two = await fakeHub(2, one.port, 'two', () => RESULT);
  let addresses = ['127.0.0.1'];
  const client = new HubClient({ endpoints: `tcp://fleet.test:${one.port}`, resolver: async () => addresses, resolveIntervalMs: 50 });
  try {
    await client.ready();
    assert.deepEqual(client.stats().hubs.map((h) => h.endpoint), [one.endpoint]);
    addresses = ['127.0.0.2'];
    await client.refresh();
    assert.deepEqual(client.stats().hubs.map((h) => h.endpoint), [two.endpoint], 'the idle vanished hub is closed');
    await client.ready();
    const result = await client.classify(Buffer.from('x'));
    assert.ok(result.ok && result.reply.hub.id === 'two');
    assert.equal(result.reply.request_id, undefined, 'no id given, none handed back');
  } finally {
    await client.close();
  }
});

test('deadlines: every hub refusing gives its refusal; no hub gives a timeout; close answers what is open', async () => {
  const busy = await fakeHub(1, '*', 'busy', () => refuse('overloaded'));
  const client = new HubClient({ endpoints: [busy.endpoint], deadlineMs: 600 });
  try {
    const result = await client.classify(Buffer.from('x'));
    assert.ok(!result.ok);
    assert.equal(result.error.code, 'overloaded');
    assert.ok(busy.received.length >= 2, 'retried after its back-off until the deadline');
  } finally {
    await client.close();
  }
  const nowhere = new HubClient({ endpoints: 'tcp://127.0.0.9:9', deadlineMs: 300 });
  const lost = await nowhere.classify(Buffer.from('x'));
  assert.ok(!lost.ok && lost.error.code === 'timeout' && lost.reply === undefined && /no hub reachable/.test(lost.error.message));
  const open = nowhere.classify(Buffer.from('x'), { deadlineMs: 10_000 });
  await new Promise((resolve) => setTimeout(resolve, 50));
  await nowhere.close();
  const closed = await open;
  assert.ok(!closed.ok && closed.error.code === 'closed');
});
