/**
 * `npm run soak -- --minutes N`: the hub under long mixed load. Closed-loop clients over
 * ZeroMQ and HTTP send valid photos and bad input; volunteer tabs join and leave; the hub's
 * RSS and /api/status are sampled throughout. At the end the clients stop sending and the hub
 * gets SIGTERM while their last requests are in flight, so its drain is checked too.
 *
 * Exits 1 when a request was lost, a reply was not what its request should get (an error
 * code outside the documented one, `internal`, a missing request_id…), or the hub did not
 * exit 0. Memory is reported (start after warm-up, peak, end, slope over the second half) and
 * a steady growth is a warning: whether it is a leak is for a person to judge.
 */
import { availableParallelism, totalmem } from 'node:os';
import path from 'node:path';
import { flagValue } from './cli.ts';
import { spawnHub } from './hub.ts';
import type { HubExit, SpawnedHub } from './hub.ts';
import { prepareModel } from './model.ts';
import { REPO_ROOT } from '../lib/repo-root.ts';
import { runStormSoak } from './storm/storm-soak.ts';
import { runFleetSoak } from './soak/fleet-soak.ts';
import { runSwarmSoak } from './soak/swarm-soak.ts';
import { readRssMiB } from '../kit/rss-sampler.ts';
import { parseSoakOptions } from './soak/cli.ts';
import type { SoakOptions } from './soak/cli.ts';
import { HubLog } from './soak/hub-log.ts';
import type { StatusSource } from './soak/hub-status.ts';
import { Ledger } from './soak/ledger.ts';
import { createLive } from './soak/live.ts';
import { startLoad } from './soak/load.ts';
import { summarizeMemory } from './soak/memory.ts';
import { Monitor } from './soak/monitor.ts';
import { seededRandom } from '../kit/random.ts';
import { buildRequestMix } from './soak/requests.ts';
import type { RequestMix } from './soak/requests.ts';
import { formatReport, judge, requestTotals, writeSoakResults } from './soak/report.ts';
import type { SoakResult } from './soak/report.ts';
import { VolunteerChurn } from './soak/volunteers.ts';

/** The hub's default grace period plus room to close sockets, workers and volunteer sockets. */
const STOP_TIMEOUT_MS = 30_000;
/** After the hub has exited, how long replies already sent may take to be read. */
const AFTER_EXIT_MS = 1000;
const SIGINT_REPEAT_MS = 1000;

async function main(): Promise<number> {
  const options = parseSoakOptions(process.argv);
  if (options.fleet !== undefined) return runFleetSoak(options, options.fleet);
  if (options.swarm !== undefined) return runSwarmSoak(options, options.swarm);
  if (options.storm) return runStormSoak(options, path.join(REPO_ROOT, 'test/fixtures/photos/chelsea.jpg'));
  const startedAt = new Date().toISOString();
  let mix: RequestMix;
  try {
    mix = buildRequestMix(options);
  } catch (error) {
    // Not a crash: a flag (--exclude) names something that is not there.
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  if (options.engine === 'onnx') await prepareModel('onnx', options.modelDir);

  process.stderr.write(`soak: starting the hub (${path.relative(process.cwd(), options.modelDir) || options.modelDir})\n`);
  const hubLog = new HubLog();
  const hub = await spawnHub({ args: options.hubArgs, timeoutMs: options.startupTimeoutS * 1000, onLog: hubLog.onLog });
  const status: StatusSource = {
    base: String(hub.ready.http),
    headers: options.apiToken ? { Authorization: `Bearer ${options.apiToken}` } : {},
  };
  const loadStart = performance.now();
  const ledger = new Ledger(loadStart);
  const live = createLive(options.minutes);
  const warnings: string[] = [];
  let churn: VolunteerChurn | undefined;
  try {
    const monitor = new Monitor({
      pid: hub.pid,
      status,
      everyMs: options.sampleS * 1000,
      startedAt: loadStart,
      counts: () => ledger.counts,
      tabsOpen: () => churn?.openTabs ?? 0,
      onSample: (sample) => live.sample(sample),
    });
    monitor.start();
    if (options.volunteers) {
      try {
        churn = await startChurn(options, status, loadStart);
      } catch (error) {
        warnings.push(`no volunteers: Chromium did not start (${error instanceof Error ? error.message : String(error)})`);
      }
    }
    const load = startLoad({ ...options, zmq: hub.zmq, http: status.base }, ledger, mix);

    const ending = await waitForEnd(options, hub.pid, loadStart);
    if (ending === 'interrupted') warnings.push('interrupted (SIGINT): the load ran shorter than asked');
    const problems = ending === 'hub-died' ? ['the hub process died during the soak'] : [];
    await monitor.stop();
    await churn?.stop();
    const loadS = (performance.now() - loadStart) / 1000;

    // Stop sending and signal at once, so the hub is asked to stop with requests in flight.
    load.stopSending();
    ledger.markStopping();
    live.note('SIGTERM, waiting for the last replies');
    const exit = await hub.stop(STOP_TIMEOUT_MS);
    // Replies already on their way are read; whatever is still owed after that never comes.
    setTimeout(() => load.abandon(), AFTER_EXIT_MS);
    problems.push(...(await load.done()));
    await churn?.close();
    live.stop();

    const result = assemble(options, startedAt, hub, exit, hubLog, ledger, monitor, churn, loadS);
    const verdict = judge(result);
    result.problems = [...problems, ...verdict.problems];
    result.warnings = [...warnings, ...verdict.warnings];
    if (exit.code !== 0 || exit.killed || ending === 'hub-died') {
      result.warnings.push(`hub log (last lines):\n    ${hubLog.lastLines().join('\n    ')}\nhub stderr (tail):\n${hub.stderrTail()}`);
    }
    const files = await writeSoakResults(options.outDir, result);
    const shown = (file: string) => path.relative(process.cwd(), file) || file;
    process.stdout.write(`${formatReport(result)}\nresults: ${shown(files.json)}, ${shown(files.svg)}\n`);
    return result.problems.length === 0 ? 0 : 1;
  } catch (error) {
    // A bug of the soak's own: leave no hub and no browser behind.
    live.stop();
    await hub.stop(5000);
    await churn?.close();
    throw error;
  }
}

function startChurn(options: SoakOptions, status: StatusSource, loadStart: number): Promise<VolunteerChurn> {
  return VolunteerChurn.start({
    status,
    everyMs: options.volunteerEveryS * 1000,
    maxTabs: options.maxTabs,
    midJobShare: options.midJobShare,
    joinTimeoutMs: options.joinTimeoutS * 1000,
    volunteerToken: options.volunteerToken,
    random: seededRandom(options.seed ^ 0x5eed),
    startedAt: loadStart,
  });
}

/** Until the time is up, SIGINT (ends the load early; a second one aborts), or the hub is gone. */
function waitForEnd(options: SoakOptions, pid: number, loadStart: number): Promise<'time' | 'interrupted' | 'hub-died'> {
  return new Promise((resolve) => {
    const finish = (why: 'time' | 'interrupted' | 'hub-died') => {
      clearInterval(watch);
      clearTimeout(timer);
      resolve(why);
    };
    const timer = setTimeout(() => finish('time'), Math.max(0, loadStart + options.minutes * 60_000 - performance.now()));
    const watch = setInterval(() => {
      if (readRssMiB(pid) === null) finish('hub-died');
    }, 1000);
    process.once('SIGINT', () => {
      process.stderr.write('\nsoak: SIGINT, winding down (again to abort)\n');
      const first = performance.now();
      process.on('SIGINT', () => {
        // tsx relays the terminal's SIGINT, so one Ctrl-C arrives twice: only a later one aborts.
        if (performance.now() - first < SIGINT_REPEAT_MS) return;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
        process.exit(130);
      });
      finish('interrupted');
    });
  });
}

function assemble(
  options: SoakOptions,
  startedAt: string,
  hub: SpawnedHub,
  exit: HubExit,
  hubLog: HubLog,
  ledger: Ledger,
  monitor: Monitor,
  churn: VolunteerChurn | undefined,
  loadS: number,
): SoakResult {
  const events = churn?.events ?? [];
  const { apiToken, volunteerToken, ...config } = options;
  return {
    startedAt,
    finishedAt: new Date().toISOString(),
    config: {
      ...config,
      hubArgs: redactSecrets(options.hubArgs),
      modelDir: path.relative(process.cwd(), options.modelDir) || options.modelDir,
      outDir: path.relative(process.cwd(), options.outDir) || options.outDir,
      offload: `offload ${flagValue(options.hubArgs, '--offload') ?? 'auto'}`,
      apiToken: apiToken ? '(set)' : undefined,
      volunteerToken: volunteerToken ? '(set)' : undefined,
      machine: { cpus: availableParallelism(), totalMemGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    },
    hub: { ready: hub.ready, startupMs: hub.startupMs, exit, logProblems: hubLog.problems },
    loadS,
    requests: requestTotals(ledger),
    volunteers: {
      enabled: churn !== undefined,
      events,
      joined: events.filter((e) => e.action === 'join').length,
      left: events.filter((e) => e.action === 'leave').length,
      failedJoins: events.filter((e) => e.action === 'join-failed').length,
      cancelledJoins: events.filter((e) => e.action === 'join-cancelled').length,
      closedMidJob: events.filter((e) => e.action === 'leave' && e.mid_job).length,
      served: ledger.counts.volunteerServed,
    },
    memory: summarizeMemory(monitor.samples, options.warmupS, loadS),
    samples: monitor.samples,
    problems: [],
    warnings: [],
  };
}

/** The hub flags as recorded in the JSON, without the values of the ones that are secrets. */
function redactSecrets(args: readonly string[]): string[] {
  const secret = /^--(api-token|volunteer-token|curve-secret-key)(=|$)/;
  return args.map((arg, i) => {
    if (secret.test(arg) && arg.includes('=')) return `${arg.slice(0, arg.indexOf('='))}=(set)`;
    return i > 0 && secret.test(args[i - 1]) && !args[i - 1].includes('=') ? '(set)' : arg;
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
