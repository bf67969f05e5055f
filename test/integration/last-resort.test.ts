/**
 * The hub's last line of defence, on a real hub process: an exception that escapes every
 * handler (raised for real by a preloaded fault injector, test/support/inject-fault.mjs) makes
 * the hub drain — readiness 503, every accepted request answered — and exit 70 so that a
 * supervisor restarts it; an unhandled rejection is treated the same.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StormLedger } from '../../kit/attackers/ledger.ts';
import { noBackoffClients } from '../../kit/attackers/zmq-attackers.ts';
import { EXIT_FATAL } from '../../server/last-resort.ts';
import { launchHub } from '../../kit/hub-process.ts';
import { payloadOf, photo } from '../../kit/zmq-clients.ts';

const INJECTOR = ['--import', './test/support/inject-fault.mjs'];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('an uncaught exception under load: readiness 503, every request sent before it answered, exit 70', { timeout: 120_000 }, async () => {
  const hub = await launchHub({ nodeArgs: INJECTOR, args: ['--engine', 'onnx', '--workers', '2'] });
  const ledger = new StormLedger();
  let faultAt = Infinity;
  let readyAfterFault: number | undefined;
  const fault = sleep(2000).then(async () => {
    faultAt = performance.now();
    hub.child.kill('SIGUSR2');
    for (let tries = 0; tries < 50 && readyAfterFault !== 503; tries++) {
      readyAfterFault = await fetch(`${hub.http}/readyz`).then((response) => response.status, () => undefined);
      await sleep(10);
    }
  });
  await noBackoffClients({
    endpoint: hub.zmq,
    clients: 8,
    body: (id) => payloadOf(photo('coffee'), { request_id: id }),
    ledger,
    until: hub.exited,
    // Past the exit, a request sent after the fault waits this long for nothing: kept short.
    replyTimeoutMs: 5000,
  });
  await fault;
  assert.equal(await hub.exited, EXIT_FATAL, 'exit code 70, for a supervisor to restart it');
  assert.equal(readyAfterFault, 503, 'readiness turned 503 while it drained');
  const unanswered = ledger.unanswered().filter((request) => request.sentAt < faultAt);
  assert.deepEqual(unanswered, [], 'every request sent before the fault was answered');
  ledger.closeBooks();
  console.log(`# uncaught exception: ${JSON.stringify(ledger.counts)} ${JSON.stringify(ledger.byCode)}`);
  assert.ok((ledger.byCode.ok ?? 0) >= 8, 'requests in flight got their results');
  for (const code of Object.keys(ledger.byCode)) assert.ok(['ok', 'shutting_down'].includes(code), code);
  const fatal = hub.logs.find((entry) => entry.level === 60);
  assert.match(String(fatal?.msg), /unexpected error/);
  assert.match(JSON.stringify(fatal?.err), /injected uncaught exception/);
});

test('an unhandled rejection is handled the same way: drained, exit 70', { timeout: 120_000 }, async () => {
  const hub = await launchHub({ nodeArgs: INJECTOR, env: { HUB_TEST_FAULT: 'reject' }, args: ['--engine', 'onnx', '--workers', '1'] });
  hub.child.kill('SIGUSR2');
  assert.equal(await hub.exited, EXIT_FATAL);
  const fatal = hub.logs.find((entry) => entry.level === 60);
  assert.equal(fatal?.origin, 'unhandledRejection');
});
