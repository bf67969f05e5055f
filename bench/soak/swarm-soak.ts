/**
 * `npm run soak -- --swarm N`: N protocol-level volunteer peers (kit/swarm/) against one hub
 * under closed-loop ZeroMQ clients, first an honest swarm, then the same size with the mix real
 * tabs bring (5% silent on a job, 10% vanishing mid-job, 10% failing, 5% crawling at 400 ms
 * an image, all reconnecting), each on a fresh hub. Prints throughput, p50/p99, lost,
 * duplicates, errors, and what the swarm cost the hub (main-thread CPU per request, memory
 * per peer); the mixed run is judged against the honest one measured in the same run.
 *
 * Exits 1 when a request was lost, answered twice or answered with an error.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../../lib/repo-root.ts';
import { MIXED_SWARM, type SwarmMix } from '../../kit/swarm/swarm.ts';
import { runSwarm, type SwarmRunResult } from '../../kit/swarm/swarm-run.ts';
import { spawnHub } from '../hub.ts';
import { lscpuModelName } from '../machine.ts';
import { prepareModel } from '../model.ts';
import type { SoakOptions } from './cli.ts';

const STOP_TIMEOUT_MS = 30_000;
/** Issue 21's bars: the mixed swarm keeps this share of the honest swarm's throughput… */
const MIN_THROUGHPUT_RATIO = 0.8;
/** …with a p99 at most this many times the honest swarm's. */
const MAX_P99_RATIO = 3;

interface SwarmPhase {
  name: string;
  peers: number;
  mix: SwarmMix;
}

export async function runSwarmSoak(options: SoakOptions, peers: number): Promise<number> {
  await prepareModel('onnx', options.modelDir);
  const base64 = readFileSync(path.join(REPO_ROOT, 'test/fixtures/photos/chelsea.jpg')).toString('base64');
  const body = (id: string) => `{"payload":"${base64}","request_id":"${id}"}`;
  const phases: SwarmPhase[] = [
    { name: `${peers} honest`, peers, mix: {} },
    { name: `${peers} mixed`, peers, mix: MIXED_SWARM },
  ];
  const results: Array<{ phase: SwarmPhase; result: SwarmRunResult }> = [];
  for (const phase of phases) {
    process.stderr.write(`soak --swarm: ${phase.name}, ${options.clients} clients, ${options.swarmSeconds} s\n`);
    const hub = await spawnHub({
      // Where each request finishes first (the soak's own default prefers volunteers); answers are not computed, so not verified.
      args: [...options.hubArgs, '--offload', 'auto', '--verify-fraction', '0', '--max-volunteers', String(peers + 64)],
      timeoutMs: options.startupTimeoutS * 1000,
    });
    try {
      const result = await runSwarm(
        { http: String(hub.ready.http), zmq: hub.zmq, pid: hub.pid },
        {
          swarm: { peers: phase.peers, mix: phase.mix, reconnectMs: 1000, seed: options.seed },
          clients: options.clients,
          durationMs: options.swarmSeconds * 1000,
          warmupMs: 3000,
          body,
        },
      );
      results.push({ phase, result });
    } finally {
      await hub.stop(STOP_TIMEOUT_MS);
    }
  }
  const report = formatSwarmReport(results);
  process.stdout.write(report.text);
  await mkdir(options.outDir, { recursive: true });
  const file = path.join(options.outDir, `swarm-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify({ processor: lscpuModelName(), clients: options.clients, seconds: options.swarmSeconds, results, verdict: report.verdict }, null, 2));
  process.stdout.write(`results: ${path.relative(process.cwd(), file)}\n`);
  return report.verdict.problems.length === 0 ? 0 : 1;
}

function formatSwarmReport(results: Array<{ phase: SwarmPhase; result: SwarmRunResult }>): { text: string; verdict: { problems: string[]; ratios: Record<string, number> } } {
  const rows = results.map(({ phase, result }) => {
    const { load } = result;
    const errors = Object.entries(load.errors).map(([code, n]) => `${code}:${n}`).join(' ') || '0';
    return [
      phase.name.padEnd(14),
      load.throughput.toFixed(1).padStart(8),
      load.p50Ms.toFixed(1).padStart(7),
      load.p99Ms.toFixed(1).padStart(8),
      String(load.lost).padStart(5),
      String(load.duplicates).padStart(5),
      errors.padStart(8),
      `${load.byExecutor.volunteer ?? 0}/${load.byExecutor.local ?? 0}`.padStart(13),
      (result.mainCpuMsPerRequest?.toFixed(3) ?? '-').padStart(10),
      (result.kibPerPeer?.toFixed(0) ?? '-').padStart(9),
    ].join('  ');
  });
  const problems: string[] = [];
  for (const { phase, result } of results) {
    if (result.load.lost > 0) problems.push(`${phase.name}: ${result.load.lost} lost`);
    if (result.load.duplicates > 0) problems.push(`${phase.name}: ${result.load.duplicates} duplicates`);
    const errors = Object.values(result.load.errors).reduce((a, b) => a + b, 0);
    if (errors > 0) problems.push(`${phase.name}: ${errors} error replies (${JSON.stringify(result.load.errors)})`);
  }
  const ratios: Record<string, number> = {};
  const [honest, mixed] = results.map((r) => r.result.load);
  if (honest && mixed) {
    ratios.throughput = mixed.throughput / honest.throughput;
    ratios.p99 = mixed.p99Ms / honest.p99Ms;
    if (ratios.throughput < MIN_THROUGHPUT_RATIO) problems.push(`mixed/honest throughput ${ratios.throughput.toFixed(2)} < ${MIN_THROUGHPUT_RATIO}`);
    if (ratios.p99 > MAX_P99_RATIO) problems.push(`mixed/honest p99 ${ratios.p99.toFixed(2)} > ${MAX_P99_RATIO}`);
  }
  const header = ['swarm'.padEnd(14), 'req/s'.padStart(8), 'p50 ms'.padStart(7), 'p99 ms'.padStart(8), 'lost'.padStart(5), 'dups'.padStart(5), 'errors'.padStart(8), 'volunteer/local'.padStart(13), 'main ms/req'.padStart(10), 'KiB/peer'.padStart(9)].join('  ');
  const lines = [
    header,
    ...rows,
    ...Object.entries(ratios).map(([name, value]) => `mixed/honest ${name}: ${value.toFixed(2)}`),
    `processor: ${lscpuModelName()}`,
    problems.length ? `problems:\n  ${problems.join('\n  ')}` : 'no problems',
  ];
  return { text: `${lines.join('\n')}\n`, verdict: { problems, ratios } };
}
