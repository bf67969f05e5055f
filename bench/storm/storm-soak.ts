/**
 * `npm run soak -- --storm --minutes N`: the storm tests' attacks at full strength, in turn,
 * for N minutes against one hub: clients that never back off, 128 pipelining DEALERs, hundreds
 * that send and vanish, an HTTP flood with aborts, and WebSockets that never read. Every
 * tracked request is followed to its reply; RSS is sampled throughout; at the end the hub gets
 * SIGTERM in the middle of a storm. Exits 1 if a request sent before SIGTERM was lost, a reply
 * came twice or had a code no storm should get, or the hub did not exit 0.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { lscpuModelName } from '../machine.ts';
import { spawnHub } from '../hub.ts';
import { prepareModel } from '../model.ts';
import type { SoakOptions } from '../soak/cli.ts';
import { summarizeMemory } from '../soak/memory.ts';
import { Monitor } from '../soak/monitor.ts';
import { renderRssChart } from '../soak/rss-chart.ts';
import * as zmq from 'zeromq';
import { percentile } from '../../shared/stats.ts';
import { StormLedger } from '../../kit/attackers/ledger.ts';
import { httpAborters, httpUploaders } from '../../kit/attackers/http-attackers.ts';
import { connectAndDrop, silentPeers } from '../../kit/attackers/ws-attackers.ts';
import { noBackoffClients, pipelinedClients, vanishingClients } from '../../kit/attackers/zmq-attackers.ts';

const PHASE_S = 20;
const REPLY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;
/** Codes a storm may get: results, load shedding, and shutting_down once SIGTERM is sent. */
const ALLOWED = new Set(['ok', 'overloaded', 'shutting_down']);

interface Target {
  zmq: string;
  http: string;
}

type Phase = { name: string; run: (target: Target, ledger: StormLedger, until: Promise<unknown>) => Promise<string> };

function photoBody(file: string): (id: string) => string {
  const base64 = readFileSync(file).toString('base64');
  return (id) => `{"payload":"${base64}","request_id":"${id}"}`;
}

function phases(image: Buffer, body: (id: string) => string): Phase[] {
  return [
    {
      name: '64 clients, no back-off',
      run: async (t, ledger, until) => {
        await noBackoffClients({ endpoint: t.zmq, clients: 64, body, ledger, until, replyTimeoutMs: REPLY_TIMEOUT_MS });
        return '';
      },
    },
    {
      name: '128 DEALERs × 8 in flight',
      run: async (t, ledger, until) => {
        await pipelinedClients({ endpoint: t.zmq, clients: 128, inFlight: 8, body, ledger, until, replyTimeoutMs: REPLY_TIMEOUT_MS });
        return '';
      },
    },
    {
      name: 'send-and-vanish with 8 working',
      run: async (t, ledger, until) => {
        let vanished = 0;
        let stop = false;
        void until.then(() => (stop = true));
        const working = noBackoffClients({ endpoint: t.zmq, clients: 8, body, ledger, until, replyTimeoutMs: REPLY_TIMEOUT_MS, lane: 'working' });
        while (!stop) vanished += await vanishingClients({ endpoint: t.zmq, count: 200, body, concurrency: 50 });
        await working;
        return `${vanished} vanished`;
      },
    },
    {
      name: '64 HTTP uploaders + aborts',
      run: async (t, ledger, until) => {
        let aborted = 0;
        let stop = false;
        void until.then(() => (stop = true));
        const aborting = (async () => {
          while (!stop) aborted += (await httpAborters(t.http, 50, image, 'mid-upload')) + (await httpAborters(t.http, 50, image, 'mid-response'));
        })();
        await Promise.all([
          httpUploaders({ base: t.http, clients: 32, image, keepAlive: true, ledger, until, replyTimeoutMs: REPLY_TIMEOUT_MS }),
          httpUploaders({ base: t.http, clients: 32, image, keepAlive: false, ledger, until, replyTimeoutMs: REPLY_TIMEOUT_MS }),
          aborting,
        ]);
        return `${aborted} aborted`;
      },
    },
    {
      name: 'silent and dropping WebSockets',
      run: async (t, ledger, until) => {
        let stop = false;
        void until.then(() => (stop = true));
        const load = noBackoffClients({ endpoint: t.zmq, clients: 8, body, ledger, until, replyTimeoutMs: REPLY_TIMEOUT_MS, lane: 'ws-load' });
        let dropped = 0;
        const events = await silentPeers(t.http, '/ws/events', 100);
        const tabs = await silentPeers(t.http, '/ws/volunteer', 150);
        while (!stop) dropped += (await connectAndDrop(t.http, '/ws/events', 100)) + (await connectAndDrop(t.http, '/ws/volunteer', 100));
        events.close();
        tabs.close();
        await load;
        return `silent ${events.accepted + tabs.accepted} accepted / ${events.refused + tabs.refused} refused, ${dropped} dropped`;
      },
    },
  ];
}

export async function runStormSoak(options: SoakOptions, photoFile: string): Promise<number> {
  if (options.engine === 'onnx') await prepareModel('onnx', options.modelDir);
  process.stderr.write(`storm: starting the hub (${path.relative(process.cwd(), options.modelDir)})\n`);
  const hub = await spawnHub({ args: options.hubArgs, timeoutMs: options.startupTimeoutS * 1000 });
  const target = { zmq: hub.zmq, http: String(hub.ready.http) };
  // The yardstick for admitted latency: a lone request, before any storm.
  const serviceMs = await loneRequestMs(target.zmq, photoBody(photoFile));
  const ledger = new StormLedger();
  const startedAt = performance.now();
  const monitor = new Monitor({
    pid: hub.pid,
    status: { base: target.http, headers: {} },
    everyMs: options.sampleS * 1000,
    startedAt,
    counts: () => ({ sent: ledger.counts.sent, ok: ledger.byCode.ok ?? 0, errored: ledger.counts.answered - (ledger.byCode.ok ?? 0), lost: ledger.counts.lost, unexpected: 0, inFlight: ledger.counts.inFlight, volunteerServed: 0 }),
    tabsOpen: () => 0,
  });
  monitor.start();
  const image = readFileSync(photoFile);
  const all = phases(image, photoBody(photoFile));
  const endAt = startedAt + options.minutes * 60_000;
  const log: Array<{ phase: string; started_s: number; note: string }> = [];
  let signalledAt = Infinity;
  /** When the hub's process was gone (its clients may wait longer for replies that never come). */
  let goneAt: Promise<number> | undefined;
  for (let i = 0; performance.now() < endAt; i++) {
    const phase = all[i % all.length];
    const last = performance.now() + PHASE_S * 1000 >= endAt;
    const phaseEnd = new Promise<void>((resolve) => setTimeout(resolve, Math.min(PHASE_S * 1000, Math.max(0, endAt - performance.now()))));
    process.stderr.write(`storm: ${((performance.now() - startedAt) / 1000).toFixed(0)} s  ${phase.name}${last ? ' (SIGTERM halfway)' : ''}\n`);
    const started_s = Math.round((performance.now() - startedAt) / 1000);
    if (last) {
      // The last phase is cut by SIGTERM: the hub must drain in the middle of a storm.
      void new Promise((resolve) => setTimeout(resolve, Math.min(PHASE_S * 500, Math.max(0, endAt - performance.now()) / 2))).then(() => {
        signalledAt = performance.now();
        void monitor.stop();
        process.kill(hub.pid, 'SIGTERM');
      });
    }
    if (last) goneAt = hubGone(hub.pid).then(() => performance.now());
    const note = await phase.run(target, ledger, last && goneAt ? goneAt : phaseEnd);
    log.push({ phase: phase.name, started_s, note });
    if (last) break;
  }
  if (signalledAt === Infinity) {
    signalledAt = performance.now();
    await monitor.stop();
  }
  const exit = await hub.stop(STOP_TIMEOUT_MS);
  const exitAfterSignalMs = (goneAt ? await goneAt : performance.now()) - signalledAt;
  const lostBeforeSignal = ledger.unanswered().filter((request) => request.sentAt < signalledAt).length;
  ledger.closeBooks();
  const memory = summarizeMemory(monitor.samples, options.warmupS, (signalledAt - startedAt) / 1000);
  const problems: string[] = [];
  if (lostBeforeSignal > 0) problems.push(`${lostBeforeSignal} requests sent before SIGTERM got no reply`);
  if (ledger.counts.duplicated > 0) problems.push(`${ledger.counts.duplicated} replies came twice`);
  if (ledger.counts.stray > 0) problems.push(`${ledger.counts.stray} replies answered nothing sent`);
  for (const code of Object.keys(ledger.byCode)) if (!ALLOWED.has(code)) problems.push(`${ledger.byCode[code]} replies with code ${code}`);
  if (exit.code !== 0) problems.push(`the hub exited with ${exit.code ?? exit.signal}${exit.killed ? ' (killed after the timeout)' : ''}`);

  const admitted = ledger.okLatencyByLane['zmq-no-backoff'] ?? [];
  const admittedP99 = admitted.length > 0 ? percentile(admitted, 99) : null;
  const result = {
    processor: lscpuModelName(),
    lone_request_ms: serviceMs,
    no_backoff_admitted: { count: admitted.length, p50_ms: admitted.length > 0 ? percentile(admitted, 50) : null, p99_ms: admittedP99, p99_over_lone: admittedP99 && admittedP99 / serviceMs },
    minutes: options.minutes,
    hub_args: options.hubArgs,
    phases: log,
    requests: { ...ledger.counts, lost_before_sigterm: lostBeforeSignal, by_code: ledger.byCode, by_lane: ledger.byLane, http_statuses: ledger.httpStatuses },
    memory,
    exit: { ...exit, ms_after_sigterm: Math.round(exitAfterSignalMs) },
    samples: monitor.samples,
    problems,
  };
  await mkdir(options.outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = path.join(options.outDir, `storm-${stamp}.json`);
  const svg = path.join(options.outDir, `storm-${stamp}.svg`);
  await writeFile(json, `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(svg, renderRssChart(monitor.samples, [], { title: `hub RSS under storms (${options.minutes} min)`, warmupS: options.warmupS }));
  const mib = (value: number | null) => (value === null ? '-' : `${value.toFixed(0)} MiB`);
  process.stdout.write(
    [
      `storm soak, ${options.minutes} min, ${result.processor}`,
      `requests: sent ${ledger.counts.sent}, answered ${ledger.counts.answered}, lost ${ledger.counts.lost} (before SIGTERM: ${lostBeforeSignal}), duplicated ${ledger.counts.duplicated}, stray ${ledger.counts.stray}`,
      `by code: ${Object.entries(ledger.byCode).map(([code, n]) => `${code} ${n}`).join(', ')}`,
      `HTTP statuses: ${Object.entries(ledger.httpStatuses).map(([status, n]) => `${status} ${n}`).join(', ')}`,
      `admitted under 64 no-back-off clients: ${admitted.length}, p99 ${admittedP99?.toFixed(0) ?? '-'} ms = ${result.no_backoff_admitted.p99_over_lone?.toFixed(1) ?? '-'} × a lone request (${serviceMs.toFixed(1)} ms, median of 7)`,
      `RSS: start ${mib(memory.startMiB)}, peak ${mib(memory.peakMiB)}, end ${mib(memory.endMiB)}, slope over the second half ${memory.slopeMiBPerMin?.toFixed(1) ?? '-'} MiB/min`,
      `hub exit: ${exit.code}, ${exitAfterSignalMs.toFixed(0)} ms after SIGTERM`,
      ...problems.map((problem) => `PROBLEM: ${problem}`),
      `results: ${path.relative(process.cwd(), json)}, ${path.relative(process.cwd(), svg)}`,
      '',
    ].join('\n'),
  );
  return problems.length === 0 ? 0 : 1;
}

/** Median end-to-end time of 7 lone requests, one after another. */
async function loneRequestMs(endpoint: string, body: (id: string) => string): Promise<number> {
  const socket = new zmq.Dealer({ linger: 0, receiveTimeout: 60_000 });
  socket.connect(endpoint);
  try {
    const times: number[] = [];
    for (let i = 0; i < 7; i++) {
      const started = performance.now();
      await socket.send(body(`lone-${i}`));
      await socket.receive();
      times.push(performance.now() - started);
    }
    return percentile(times, 50);
  } finally {
    socket.close();
  }
}

/** Resolves once the process is gone: the last phase's clients stop when the hub does. */
function hubGone(pid: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      try {
        process.kill(pid, 0);
      } catch {
        clearInterval(timer);
        resolve();
      }
    }, 100);
  });
}
