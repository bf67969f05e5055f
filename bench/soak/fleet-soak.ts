/**
 * `npm run soak -- --fleet N --minutes M`: N hubs on loopback (127.0.0.2, .3, … on one port),
 * closed-loop clients spreading requests over them through the client library, and every
 * 20 s one hub is killed (SIGKILL and SIGTERM in turn) and started again on the same address.
 * Every request must end with a result: the client resends what a dead or draining hub held.
 * Reports requests by outcome and by hub, kills and restarts; exits 1 on any request without
 * a result, a reply naming another request, or a hub that did not restart.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { HubClient } from '../../client/index.ts';
import { spawnHub } from '../hub.ts';
import type { SpawnedHub } from '../hub.ts';
import { lscpuModelName } from '../machine.ts';
import { prepareModel } from '../model.ts';
import { REPO_ROOT } from '../../lib/repo-root.ts';
import type { SoakOptions } from './cli.ts';

const CHAOS_EVERY_MS = 20_000;
const DOWN_FOR_MS = 3000;
const STOP_TIMEOUT_MS = 30_000;

interface FleetMember {
  id: string;
  endpoint: string;
  hub: SpawnedHub;
}

export async function runFleetSoak(options: SoakOptions, size: number): Promise<number> {
  if (options.engine === 'onnx') await prepareModel('onnx', options.modelDir);
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const start = async (i: number): Promise<FleetMember> => {
    const id = `hub-${i + 1}`;
    const endpoint = `tcp://127.0.0.${i + 2}:${port}`;
    const hub = await spawnHub({ args: [...options.hubArgs, '--zmq', endpoint, '--hub-id', id, '--model-poll-ms', '0'], timeoutMs: options.startupTimeoutS * 1000 });
    return { id, endpoint, hub };
  };
  process.stderr.write(`fleet soak: starting ${size} hubs on port ${port}\n`);
  const members: FleetMember[] = [];
  for (let i = 0; i < size; i++) members.push(await start(i));
  const client = new HubClient({ endpoints: members.map((m) => m.endpoint), deadlineMs: options.replyTimeoutS * 1000 });
  await client.ready();

  const photos = readdirSync(path.join(REPO_ROOT, 'test/fixtures/photos')).filter((name) => name.endsWith('.jpg'));
  const payloads = photos.map((name) => readFileSync(path.join(REPO_ROOT, 'test/fixtures/photos', name)).toString('base64'));
  const outcomes: Record<string, number> = {};
  const byHub: Record<string, number> = {};
  const problems: string[] = [];
  let sent = 0;
  let stopping = false;
  const loops = Array.from({ length: options.clients }, async (_, c) => {
    for (let n = 0; !stopping; n++) {
      const requestId = `f${c}-${n}`;
      sent++;
      const result = await client.classify(payloads[(c + n) % payloads.length], { requestId });
      const code = result.ok ? 'ok' : result.error.code;
      outcomes[code] = (outcomes[code] ?? 0) + 1;
      if (result.ok) {
        byHub[result.reply.hub.id] = (byHub[result.reply.hub.id] ?? 0) + 1;
        if (result.reply.request_id !== requestId) problems.push(`${requestId} got the reply of ${result.reply.request_id}`);
      }
    }
  });

  const chaos: Array<{ at_s: number; hub: string; signal: string; exit: string; restarted_after_ms?: number }> = [];
  const startedAt = performance.now();
  const endAt = startedAt + options.minutes * 60_000;
  for (let turn = 0; performance.now() + CHAOS_EVERY_MS < endAt; turn++) {
    await new Promise((resolve) => setTimeout(resolve, CHAOS_EVERY_MS));
    const i = turn % size;
    const victim = members[i];
    const signal = turn % 2 === 0 ? 'SIGKILL' : 'SIGTERM';
    const at_s = Math.round((performance.now() - startedAt) / 1000);
    process.stderr.write(`fleet soak: ${at_s} s  ${signal} ${victim.id}\n`);
    if (signal === 'SIGKILL') process.kill(victim.hub.pid, 'SIGKILL');
    const exit = await victim.hub.stop(STOP_TIMEOUT_MS);
    const event: (typeof chaos)[number] = { at_s, hub: victim.id, signal, exit: exit.signal ?? String(exit.code) };
    chaos.push(event);
    await new Promise((resolve) => setTimeout(resolve, DOWN_FOR_MS));
    const down = performance.now();
    try {
      members[i] = await start(i);
      event.restarted_after_ms = Math.round(performance.now() - down);
    } catch (error) {
      problems.push(`${victim.id} did not restart: ${error instanceof Error ? error.message : String(error)}`);
      break;
    }
  }
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, endAt - performance.now())));
  stopping = true;
  await Promise.all(loops);
  const totals = client.stats();
  await client.close();
  for (const member of members) {
    const exit = await member.hub.stop(STOP_TIMEOUT_MS);
    if (exit.code !== 0) problems.push(`${member.id} exited with ${exit.code ?? exit.signal} at the end`);
  }
  const failed = sent - (outcomes.ok ?? 0);
  if (failed > 0) problems.push(`${failed} request(s) without a result: ${JSON.stringify(outcomes)}`);
  for (const event of chaos) if (event.signal === 'SIGTERM' && event.exit !== '0') problems.push(`${event.hub} exited ${event.exit} after SIGTERM`);
  process.stdout.write(
    [
      `fleet soak, ${size} hubs, ${options.minutes} min, ${options.clients} clients, ${lscpuModelName()}`,
      `requests: sent ${sent}, by outcome ${JSON.stringify(outcomes)}, by hub ${JSON.stringify(byHub)}`,
      `client: results ${totals.results}, errors ${totals.errors}, resends to another hub ${totals.resends}`,
      `chaos: ${chaos.map((e) => `${e.at_s}s ${e.signal} ${e.hub} (exit ${e.exit}, back in ${e.restarted_after_ms ?? '-'} ms)`).join('; ')}`,
      ...problems.map((problem) => `PROBLEM: ${problem}`),
      '',
    ].join('\n'),
  );
  return problems.length === 0 ? 0 : 1;
}
