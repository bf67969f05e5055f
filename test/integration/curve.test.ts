/**
 * ZeroMQ CURVE: a client with an allowed key is served; one without CURVE, with a key not on
 * the list, or with the wrong server key gets nothing through. Real sockets on loopback, the
 * real hub process, and pyzmq as a real foreign client.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import * as zmq from 'zeromq';
import type { Reply } from '../../shared/protocol/classify.ts';
import {
  curvePublicKeyOf,
  curveSecurity,
  parseCurveClients,
  z85Decode,
  z85Encode,
  ZapAuthenticator,
} from '../../server/front/curve-auth.ts';
import { launchHub } from '../../kit/hub-process.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import { expectSuccess, payloadOf, photo } from '../../kit/zmq-clients.ts';
import { PHOTOS_DIR, REPO_ROOT, TEST_MODEL_DIR } from '../../kit/paths.ts';
import { LOOPBACK_HUB_ARGV } from '../../server/cli/loopback-hub-argv.ts';

const PREDS_FORMAT = /^[^,:]+ : [0-9.e-]+, [^,:]+ : [0-9.e-]+, [^,:]+ : [0-9.e-]+$/;
/** Long enough for a loopback handshake and a refusal many times over; a served request on this hub answers in well under it once warm. */
const NOTHING_WITHIN_MS = 2500;

interface CurveClientKeys {
  serverKey?: string;
  publicKey?: string;
  secretKey?: string;
}

/** One request on a fresh DEALER, with CURVE when keys are given; the reply, or the receive error (EAGAIN on timeout). */
async function dealerCall(endpoint: string, body: string, keys: CurveClientKeys, timeoutMs: number): Promise<Reply> {
  const socket = new zmq.Dealer({ receiveTimeout: timeoutMs, linger: 0 });
  if (keys.serverKey) {
    socket.curveServerKey = keys.serverKey;
    socket.curvePublicKey = keys.publicKey ?? null;
    socket.curveSecretKey = keys.secretKey ?? null;
  }
  socket.connect(endpoint);
  try {
    await socket.send(body);
    const frames = await socket.receive();
    return JSON.parse(frames[frames.length - 1].toString()) as Reply;
  } finally {
    socket.close();
  }
}

async function expectNothing(call: Promise<Reply>): Promise<void> {
  await assert.rejects(call, (error: { code?: string }) => {
    assert.equal(error.code, 'EAGAIN', `expected no reply (a receive timeout), got ${String(error)}`);
    return true;
  });
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface PythonRun {
  code: number;
  stdout: string;
  stderr: string;
}

function runPython(script: string, args: string[], env: Record<string, string>): Promise<PythonRun> {
  return new Promise((resolve) => {
    execFile('/usr/bin/python3', [script, ...args], { timeout: 90_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'curve-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('Z85 and CURVE keys', () => {
  test('Z85 encodes and decodes as ZeroMQ RFC 32 says', () => {
    const bytes = Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
    assert.equal(z85Encode(bytes), 'HelloWorld');
    assert.deepEqual(z85Decode('HelloWorld'), bytes);
    assert.equal(z85Decode('Hello World'), undefined, 'length not a multiple of 5');
    assert.equal(z85Decode('Hello"orld'), undefined, 'a character outside the alphabet');
    assert.equal(z85Decode('%%%%%'), undefined, 'a group over 2^32 - 1');
  });

  test("the public key derived from a secret key is the one libzmq's curveKeyPair() made with it", () => {
    for (let i = 0; i < 50; i++) {
      const pair = zmq.curveKeyPair();
      assert.equal(curvePublicKeyOf(pair.secretKey), pair.publicKey);
      assert.equal(z85Encode(z85Decode(pair.publicKey)!), pair.publicKey);
    }
  });

  test('--curve-clients takes a comma-separated list', () => {
    const [a, b] = [zmq.curveKeyPair().publicKey, zmq.curveKeyPair().publicKey];
    const keys = parseCurveClients(` ${a}, ${b},${a} `);
    assert.deepEqual(keys.map((key) => z85Encode(key)), [a, b], 'duplicates kept once, order kept');
    assert.throws(() => parseCurveClients(`${a},not-a-key`), /entry 2: expected a Z85 CURVE public key \(40 characters\), got 9 characters/);
    assert.throws(() => parseCurveClients(' , '), /no client key given/);
  });

  test('--curve-clients @file: one key per line, # comments and blank lines skipped, the bad line named', () => {
    const [a, b, c] = [zmq.curveKeyPair().publicKey, zmq.curveKeyPair().publicKey, zmq.curveKeyPair().publicKey];
    const good = join(tmp, 'clients.txt');
    writeFileSync(good, `# clients of the hub\n\n${a}\n  ${b}   # the lab's camera\n#${c}\n\r\n`);
    assert.deepEqual(parseCurveClients(`@${good}`).map((key) => z85Encode(key)), [a, b], 'the commented-out key is not allowed');

    const bad = join(tmp, 'bad-clients.txt');
    writeFileSync(bad, `# clients\n${a}\n\n${b.slice(0, 39)}\n`);
    assert.throws(() => parseCurveClients(`@${bad}`), (error: Error) => {
      assert.match(error.message, /bad-clients\.txt line 4: expected a Z85 CURVE public key \(40 characters\), got 39 characters/);
      assert.ok(!error.message.includes(b.slice(0, 39)), 'the text of the bad line is not echoed');
      return true;
    });
    writeFileSync(bad, `${a} trailing words\n`);
    assert.throws(() => parseCurveClients(`@${bad}`), /line 1: expected only a key on the line/);
    writeFileSync(bad, `${'"'.repeat(40)}\n`);
    assert.throws(() => parseCurveClients(`@${bad}`), /line 1: not a valid Z85 key/);
    writeFileSync(bad, '# nobody yet\n\n');
    assert.throws(() => parseCurveClients(`@${bad}`), /holds no client key/);
    assert.throws(() => parseCurveClients(`@${join(tmp, 'missing.txt')}`), /missing\.txt: cannot read the file/);
  });

  test('a secret key without allowed clients, or clients without a secret key, is refused', () => {
    const pair = zmq.curveKeyPair();
    assert.equal(curveSecurity({}), undefined);
    assert.throws(() => curveSecurity({ curveSecretKey: pair.secretKey }), /--curve-secret-key is set without --curve-clients/);
    assert.throws(() => curveSecurity({ curveClients: pair.publicKey }), /--curve-clients is set without --curve-secret-key/);
    const security = curveSecurity({ curveSecretKey: pair.secretKey, curveClients: pair.publicKey });
    assert.equal(security?.publicKey, pair.publicKey);
    assert.equal(security?.clientKeys.length, 1);
  });
});

describe('the ZAP handler, in process', () => {
  test('lets in allowed keys, refuses the others, counts both, rate-limits its log, and closes', async () => {
    const server = zmq.curveKeyPair();
    const allowed = zmq.curveKeyPair();
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const zap = new ZapAuthenticator([allowed.publicKey], log, { logLimit: { lines: 2, windowMs: 60_000 } });
    await zap.start();
    const router = new zmq.Router({ curveServer: true, curveSecretKey: server.secretKey, zapDomain: 'resnet-hub', linger: 0 });
    await router.bind('tcp://127.0.0.1:*');
    const endpoint = router.lastEndpoint!;
    const echo = (async () => {
      for await (const [id, body] of router) await router.send([id, body]);
    })().catch(() => undefined);
    try {
      const ok = await dealerCall(endpoint, '{"hello": 1}', { serverKey: server.publicKey, ...allowed }, 5000);
      assert.deepEqual(ok, { hello: 1 });
      const strangers = Array.from({ length: 5 }, () => zmq.curveKeyPair());
      for (const stranger of strangers) {
        await expectNothing(dealerCall(endpoint, '{"hello": 2}', { serverKey: server.publicKey, ...stranger }, 700));
      }
      assert.equal(zap.accepted, 1);
      assert.equal(zap.refused, 5);
      assert.deepEqual(zap.counts().refusedByReason, { client_key_not_allowed: 5 });
      const refusals = lines.filter((line) => line.msg === 'ZeroMQ client refused');
      assert.equal(refusals.length, 2, 'two lines per window, the rest counted');
      assert.deepEqual(
        refusals.map((line) => [line.reason, line.client_key, line.address]),
        strangers.slice(0, 2).map((stranger) => ['client_key_not_allowed', stranger.publicKey, '127.0.0.1']),
      );
      assert.ok(lines.some((line) => line.msg === 'ZeroMQ CURVE client accepted' && line.client_key === allowed.publicKey));
    } finally {
      router.close();
      await echo;
      await zap.close();
    }
    const summary = lines.find((line) => line.msg === 'ZeroMQ clients refused (not logged one by one)');
    assert.deepEqual(summary?.suppressed, { client_key_not_allowed: 3 }, 'closing logs what the rate limit held back');
    // Closed means unbound: another handler can take the ZAP endpoint.
    const next = new ZapAuthenticator([allowed.publicKey], log);
    await next.start();
    await next.close();
  });
});

describe('the hub with CURVE', () => {
  const server = zmq.curveKeyPair();
  const client = zmq.curveKeyPair();
  const python = zmq.curveKeyPair();
  const stranger = zmq.curveKeyPair();
  const allowedKeys = { serverKey: server.publicKey, ...client };
  let hub: HubProcess;

  before(async () => {
    const file = join(tmp, 'hub-clients.txt');
    // The stranger's key is there, commented out: it must stay out.
    writeFileSync(file, `# who may use the hub\n\n${client.publicKey}   # the TypeScript test client\n#${stranger.publicKey}\n${python.publicKey}\n`);
    hub = await launchHub({
      args: ['--engine', 'onnx', '--workers', '1', '--curve-secret-key', server.secretKey, '--curve-clients', `@${file}`],
    });
  });

  after(async () => {
    await hub?.stop();
  });

  const refusals = (reason: string) => hub.logs.filter((line) => line.msg === 'ZeroMQ client refused' && line.reason === reason);

  test('the ready log says CURVE is on and gives the public key clients need', () => {
    const ready = hub.logs.find((line) => line.msg === 'ready');
    assert.equal(ready?.curve, true);
    assert.equal(ready?.curve_public_key, server.publicKey);
    const on = hub.logs.find((line) => line.msg === 'ZeroMQ CURVE on: encrypted, only allowed client keys are served');
    assert.equal(on?.allowed_clients, 2, 'two keys in the file, the commented-out one not counted');
  });

  let servedPreds: string;
  test('a client with an allowed key and the server public key gets the classification', async () => {
    const reply = expectSuccess(await dealerCall(hub.zmq, payloadOf(photo('chelsea')), allowedKeys, 60_000));
    assert.match(reply.preds, PREDS_FORMAT);
    assert.equal(reply.executor.engine, 'onnx');
    // The same image over HTTP (not behind CURVE) gives the same answer.
    const response = await fetch(`${hub.http}/api/classify`, { method: 'POST', body: new Uint8Array(photo('chelsea')), headers: { 'Content-Type': 'image/jpeg' } });
    assert.equal(response.status, 200);
    const overHttp = (await response.json()) as { preds: string };
    assert.equal(reply.preds, overHttp.preds);
    servedPreds = reply.preds;
  });

  test('a plain DEALER without CURVE gets nothing through, and the hub keeps serving', async () => {
    await expectNothing(dealerCall(hub.zmq, payloadOf(photo('chelsea')), {}, NOTHING_WITHIN_MS));
    // libzmq reports a client without CURVE as a mechanism mismatch, or (depending on how far its
    // greeting got) as another handshake failure: either way it is refused and counted.
    const refusal = await waitFor('the handshake refusal in the log', () => refusals('mechanism_mismatch')[0] ?? refusals('handshake_failed')[0], 15_000);
    assert.equal(typeof refusal.refused, 'number');
    const reply = expectSuccess(await dealerCall(hub.zmq, payloadOf(photo('chelsea')), allowedKeys, 60_000));
    assert.equal(reply.preds, servedPreds);
  });

  test('a CURVE client whose key is not allowed gets nothing; the hub logs and counts it', async () => {
    const before = hub.logs.filter((line) => line.msg === 'ZeroMQ client refused').length;
    await expectNothing(dealerCall(hub.zmq, payloadOf(photo('chelsea')), { serverKey: server.publicKey, ...stranger }, NOTHING_WITHIN_MS));
    const refusal = await waitFor('the client_key_not_allowed refusal in the log', () => refusals('client_key_not_allowed')[0]);
    assert.equal(refusal.client_key, stranger.publicKey);
    assert.equal(refusal.address, '127.0.0.1');
    assert.ok(typeof refusal.refused === 'number' && refusal.refused > 1, 'the count includes the earlier refusal');
    assert.ok(hub.logs.filter((line) => line.msg === 'ZeroMQ client refused').length > before);
    expectSuccess(await dealerCall(hub.zmq, payloadOf(photo('coffee')), allowedKeys, 60_000));
    const metrics = await (await fetch(`${hub.http}/metrics`)).text();
    const count = (result: string, reason: string) => Number(new RegExp(`^resnet_hub_zmq_auth_total\\{result="${result}",reason="${reason}"\\} (\\d+)`, 'm').exec(metrics)?.[1]);
    assert.ok(count('refused', 'client_key_not_allowed') >= 1, '/metrics counts the refusal');
    assert.ok(count('accepted', '') >= 2, 'and the allowed clients');
  });

  test('a client with the wrong server public key gets nothing; its retries are logged a few times only', async () => {
    const impostor = zmq.curveKeyPair();
    await expectNothing(dealerCall(hub.zmq, payloadOf(photo('chelsea')), { serverKey: impostor.publicKey, ...client }, NOTHING_WITHIN_MS));
    await waitFor('the cryptographic refusal in the log', () => refusals('cryptographic')[0]);
    // The client reconnects every 100 ms while it waits, each time refused: a few lines, not one per attempt.
    const lines = refusals('cryptographic');
    assert.ok(lines.length <= 3, `${lines.length} log lines`);
    assert.ok(Math.max(...lines.map((line) => Number(line.refused))) >= 3);
    expectSuccess(await dealerCall(hub.zmq, payloadOf(photo('coffee')), allowedKeys, 60_000));
  });

  test("pyzmq: the seed's DEALER client with CURVE is served; with a key not allowed it gets nothing", async () => {
    const script = `${REPO_ROOT}test/clients/curve_dealer_client.py`;
    const args = [hub.zmq.replace('127.0.0.1', 'localhost'), `${PHOTOS_DIR}/chelsea.jpg`];
    const served = await runPython(script, args, { CURVE_SERVER_KEY: server.publicKey, CURVE_PUBLIC_KEY: python.publicKey, CURVE_SECRET_KEY: python.secretKey });
    assert.equal(served.code, 0, served.stderr);
    assert.equal((JSON.parse(served.stdout) as { preds: string }).preds, servedPreds);

    const refused = await runPython(script, args, {
      CURVE_SERVER_KEY: server.publicKey,
      CURVE_PUBLIC_KEY: stranger.publicKey,
      CURVE_SECRET_KEY: stranger.secretKey,
      RECEIVE_TIMEOUT_MS: String(NOTHING_WITHIN_MS),
    });
    assert.equal(refused.code, 3, refused.stderr);
    assert.deepEqual(JSON.parse(refused.stdout), { timeout: true });
  });

  test('after all the refusals, allowed clients are still served, concurrently', async () => {
    const replies = await Promise.all(['chelsea', 'chelsea', 'chelsea'].map(() => dealerCall(hub.zmq, payloadOf(photo('chelsea')), allowedKeys, 60_000)));
    for (const reply of replies) assert.equal(expectSuccess(reply).preds, servedPreds);
  });
});

describe('the hub refuses to start with a bad CURVE configuration', () => {
  const server = zmq.curveKeyPair();

  /** Runs the hub as launchHub does, to its exit; its exit code and the message of its fatal log line. */
  async function expectStartRefused(args: string[], message: RegExp): Promise<void> {
    const child = spawn(process.execPath, [...LOOPBACK_HUB_ARGV, '--model-dir', TEST_MODEL_DIR, '--engine', 'onnx', '--workers', '1', ...args], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    const lines = stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg?: string; err?: { message?: string } });
    assert.ok(code !== null && code !== 0, `exit code ${code}`);
    assert.equal(lines.some((line) => line.msg === 'ready'), false, 'it never served');
    const fatal = lines.find((line) => line.msg === 'could not start');
    assert.match(fatal?.err?.message ?? '(no "could not start" log line)', message);
  }

  test('a bad key in the --curve-clients file: the message names the line', async () => {
    const file = join(tmp, 'bad-hub-clients.txt');
    writeFileSync(file, `# clients\n${zmq.curveKeyPair().publicKey}\n\nthis-is-no-key\n`);
    await expectStartRefused(['--curve-secret-key', server.secretKey, '--curve-clients', `@${file}`], /bad-hub-clients\.txt line 4: expected a Z85 CURVE public key/);
  });

  test('--curve-secret-key without --curve-clients', async () => {
    await expectStartRefused(['--curve-secret-key', server.secretKey], /--curve-secret-key is set without --curve-clients/);
  });
});
