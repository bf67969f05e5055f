/**
 * Traffic per interval for the dashboard's charts: replies are recorded as they happen, and
 * `take()` closes the interval into one sample. The last `capacity` samples are kept, so a
 * page that opens late still sees the last minutes.
 */
import type { StatsSample } from '../../shared/protocol/events.ts';
import { percentileOfSorted } from '../../shared/stats.ts';

export class StatsWindow {
  private readonly samples: StatsSample[] = [];
  private latencies: number[] = [];
  private completed = 0;
  private failed = 0;
  private intervalStart: number;

  constructor(
    private readonly capacity: number,
    now: number = Date.now(),
  ) {
    this.intervalStart = now;
  }

  recordSuccess(totalMs: number): void {
    this.completed++;
    this.latencies.push(totalMs);
  }

  recordFailure(): void {
    this.failed++;
  }

  /** Ends the current interval and starts the next one. */
  take(queueDepth: number, running: number, now: number = Date.now()): StatsSample {
    const seconds = Math.max(1e-3, (now - this.intervalStart) / 1000);
    const sorted = this.latencies.sort((a, b) => a - b);
    const at = (q: number) => (sorted.length === 0 ? null : round1(percentileOfSorted(sorted, q)));
    const sample: StatsSample = {
      at: now,
      completed: this.completed,
      failed: this.failed,
      throughput: round1(this.completed / seconds),
      queue_depth: queueDepth,
      running,
      latency_p50_ms: at(50),
      latency_p90_ms: at(90),
      latency_p99_ms: at(99),
    };
    this.samples.push(sample);
    if (this.samples.length > this.capacity) this.samples.splice(0, this.samples.length - this.capacity);
    this.latencies = [];
    this.completed = 0;
    this.failed = 0;
    this.intervalStart = now;
    return sample;
  }

  history(): StatsSample[] {
    return [...this.samples];
  }
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
