/**
 * Memory over time: every few seconds the hub's RSS (VmRSS from /proc: its worker threads are
 * threads of the same process, so it is all of the hub), the hub's own view from /api/status
 * (queue, requests by outcome, volunteers connected), and the soak's counts at that moment.
 */
import { readRssMiB } from '../../kit/rss-sampler.ts';
import { fetchStatus } from './hub-status.ts';
import type { StatusSource } from './hub-status.ts';
import type { LedgerCounts } from './ledger.ts';

export interface Sample {
  /** Seconds since the load started. */
  t_s: number;
  rss_mib: number | null;
  /** Null when /api/status did not answer in time. */
  hub: {
    queue_depth: number;
    running: number;
    requests: Record<string, number>;
    volunteers_connected: number;
  } | null;
  client: LedgerCounts;
  tabs_open: number;
}

export interface MonitorOptions {
  pid: number;
  status: StatusSource;
  everyMs: number;
  startedAt: number;
  counts: () => LedgerCounts;
  tabsOpen: () => number;
  onSample?: (sample: Sample) => void;
}

export class Monitor {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private taking: Promise<Sample> | undefined;

  constructor(private readonly options: MonitorOptions) {}

  start(): void {
    void this.take();
    this.timer = setInterval(() => void this.take(), this.options.everyMs);
  }

  /** Stops the timer and takes a last sample (the "end" figure, before the hub is stopped). */
  async stop(): Promise<Sample> {
    clearInterval(this.timer);
    await this.taking;
    return this.take();
  }

  private take(): Promise<Sample> {
    // A slow /api/status must not stack samples up; the next tick simply skips.
    if (this.taking) return this.taking;
    this.taking = this.sample().finally(() => (this.taking = undefined));
    return this.taking;
  }

  private async sample(): Promise<Sample> {
    const t = performance.now();
    // RSS first: it is the figure that matters, and should not wait for the HTTP round trip.
    const rss = readRssMiB(this.options.pid);
    const status = await fetchStatus(this.options.status);
    const sample: Sample = {
      t_s: Math.round((t - this.options.startedAt) / 100) / 10,
      rss_mib: rss === null ? null : Math.round(rss * 10) / 10,
      hub: status && {
        queue_depth: status.queue.depth,
        running: status.queue.running,
        requests: status.requests,
        volunteers_connected: status.volunteer_stats?.connected ?? status.volunteers.length,
      },
      client: { ...this.options.counts() },
      tabs_open: this.options.tabsOpen(),
    };
    this.samples.push(sample);
    this.options.onSample?.(sample);
    return sample;
  }
}
