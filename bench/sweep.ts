/**
 * The hub's closed-loop sweep: every concurrency step in turn against one spawned hub, with
 * its memory sampled throughout and, over each step's measured window, the cores each party
 * used (cpu-share.ts) and the hub's own split by thread group (thread-cpu.ts).
 */
import type { BenchOptions } from './cli.ts';
import { cpuShare, cpuSnapshot } from './cpu-share.ts';
import type { CpuShare, CpuSnapshot } from './cpu-share.ts';
import type { SpawnedHub } from './hub.ts';
import { runStep } from './load-generator.ts';
import type { Progress } from './progress.ts';
import type { BenchStep } from './report.ts';
import { sampleRss } from '../kit/rss-sampler.ts';
import type { RssSummary } from '../kit/rss-sampler.ts';
import { threadCpu, threadSnapshot } from '../kit/thread-cpu.ts';
import type { ThreadCpu, ThreadSnapshot } from '../kit/thread-cpu.ts';

const RSS_INTERVAL_MS = 250;

export async function runSweep(
  hub: SpawnedHub,
  options: Pick<BenchOptions, 'concurrency' | 'warmupS' | 'durationS' | 'replyTimeoutS'>,
  payloads: readonly string[],
  progress: Progress,
  label = '',
): Promise<{ steps: BenchStep[]; memory: RssSummary }> {
  const steps: BenchStep[] = [];
  const sampler = sampleRss(hub.pid, RSS_INTERVAL_MS);
  try {
    for (const concurrency of options.concurrency) {
      progress.begin(`${label}C=${concurrency}`);
      let before: CpuSnapshot | null = null;
      let threadsBefore: ThreadSnapshot | null = null;
      let cpu: CpuShare | null = null;
      let threads: ThreadCpu | null = null;
      const step = await runStep({
        endpoint: hub.zmq,
        payloads,
        concurrency,
        warmupMs: options.warmupS * 1000,
        durationMs: options.durationS * 1000,
        replyTimeoutMs: options.replyTimeoutS * 1000,
        tag: `bench-${label.replace(/\W/g, '')}c${concurrency}`,
        onPhase: (phase) => {
          progress.detail(phase);
          if (phase === 'measuring') {
            before = cpuSnapshot(hub.pid);
            threadsBefore = threadSnapshot(hub.pid);
          }
          if (phase === 'draining') {
            cpu = cpuShare(before, cpuSnapshot(hub.pid));
            threads = threadCpu(threadsBefore, threadSnapshot(hub.pid));
          }
        },
      });
      // The step ends without its 'draining' phase when every lane's last reply came before the
      // window's end: the window then ends about now, with nothing left to drain.
      if (threadsBefore !== null && threads === null) {
        cpu = cpuShare(before, cpuSnapshot(hub.pid));
        threads = threadCpu(threadsBefore, threadSnapshot(hub.pid));
      }
      steps.push({ ...step, cpu, threadCpu: threads });
    }
  } catch (error) {
    sampler.stop();
    throw error;
  }
  return { steps, memory: sampler.stop() };
}
