/**
 * The figures at the top of the dashboard. Throughput averages the last seconds' samples;
 * latency percentiles come from the individual replies of the same window (percentiles of
 * per-second percentiles would not be percentiles).
 */
import type { StatsSample } from '../../../shared/protocol/events.ts';
import type { ExecutorStatus } from '../../../shared/protocol/status.ts';
import { percentile } from '../../../shared/stats.ts';
import { byId } from '../common/dom.ts';
import { formatCount, formatMs } from '../common/format.ts';

const WINDOW_MS = 10_000;

export class Tiles {
  private readonly latencies: Array<{ at: number; ms: number }> = [];
  private readonly samples: StatsSample[] = [];

  recordLatency(at: number, ms: number): void {
    this.latencies.push({ at, ms });
  }

  update(sample: StatsSample, requests: Record<string, number>, executors: readonly ExecutorStatus[]): void {
    this.samples.push(sample);
    const since = sample.at - WINDOW_MS;
    while (this.samples.length > 0 && this.samples[0].at <= since) this.samples.shift();
    while (this.latencies.length > 0 && this.latencies[0].at <= since) this.latencies.shift();

    const throughput = this.samples.reduce((sum, s) => sum + s.throughput, 0) / Math.max(1, this.samples.length);
    byId('tile-throughput').textContent = throughput.toFixed(1);
    const values = this.latencies.map((l) => l.ms);
    byId('tile-latency').textContent = values.length === 0 ? '—' : `${formatMs(percentile(values, 50))} / ${formatMs(percentile(values, 90))}`;
    byId('tile-queue').textContent = String(sample.queue_depth);
    byId('tile-running').textContent = `running: ${sample.running}`;

    const total = Object.values(requests).reduce((sum, n) => sum + n, 0);
    const errors = total - (requests.ok ?? 0);
    const requestsTile = byId('tile-requests');
    requestsTile.textContent = formatCount(total);
    requestsTile.dataset.count = String(total);
    byId('tile-errors').textContent = `ok: ${formatCount(requests.ok ?? 0)} · errors: ${formatCount(errors)}`;

    const local = executors.filter((e) => e.kind === 'local').length;
    const volunteers = executors.filter((e) => e.kind === 'volunteer' && e.state !== 'gone').length;
    byId('tile-executors').textContent = String(local + volunteers);
    byId('tile-executors-note').textContent = `${local} local · ${volunteers} volunteer${volunteers === 1 ? '' : 's'}`;
  }
}
