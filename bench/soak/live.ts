/**
 * The live progress line: on a terminal, bench/progress.ts's bar with one step per minute and
 * the latest sample as its detail; elsewhere (CI, a log file: cli-progress draws nothing there)
 * one plain line every half minute, so a long soak's log still shows memory over time.
 */
import { createProgress } from '../progress.ts';
import type { Sample } from './monitor.ts';

const PLAIN_EVERY_S = 30;

export interface Live {
  sample(sample: Sample): void;
  note(text: string): void;
  stop(): void;
}

export function createLive(minutes: number): Live {
  const steps = Math.max(1, Math.ceil(minutes));
  if (process.stderr.isTTY) {
    const progress = createProgress(steps + 1, 'soak');
    let minute = -1;
    return {
      sample(sample) {
        const current = Math.min(steps - 1, Math.floor(sample.t_s / 60));
        while (minute < current) progress.begin(`minute ${++minute + 1}/${steps}`);
        progress.detail(describe(sample));
      },
      note(text) {
        progress.begin(text);
      },
      stop: () => progress.stop(),
    };
  }
  let lastPrinted = -Infinity;
  return {
    sample(sample) {
      if (sample.t_s - lastPrinted < PLAIN_EVERY_S) return;
      lastPrinted = sample.t_s;
      process.stderr.write(`soak ${formatClock(sample.t_s)} ${describe(sample)}\n`);
    },
    note(text) {
      process.stderr.write(`soak: ${text}\n`);
    },
    stop() {},
  };
}

function describe(s: Sample): string {
  const c = s.client;
  const hub = s.hub ? `queue ${s.hub.queue_depth}+${s.hub.running}` : 'status n/a';
  return `rss ${s.rss_mib === null ? '-' : s.rss_mib.toFixed(0)} MiB | sent ${c.sent} ok ${c.ok} err ${c.errored} lost ${c.lost} unexp ${c.unexpected} | ${hub} | tabs ${s.tabs_open} vol ${c.volunteerServed}`;
}

function formatClock(seconds: number): string {
  const m = Math.floor(seconds / 60);
  return `${String(m).padStart(2, '0')}:${String(Math.floor(seconds - m * 60)).padStart(2, '0')}`;
}
