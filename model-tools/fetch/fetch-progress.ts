/**
 * Shows a weights fetch as it goes: one progress bar on stderr (on a terminal) whose label
 * says the stage, and for downloads MiB done/total and the speed; plus milestone lines (each
 * stage's start, and every 10% of the download) for where no bar is drawn: logs, CI, the
 * hub's JSON log.
 */
import { createProgressBar } from '../../lib/progress.ts';

const MiB = 1024 * 1024;

export interface FetchProgress {
  onProgress(stage: string, done: number, total: number): void;
  stop(): void;
}

export interface FetchProgressOptions {
  /** Called at each stage's start and at each further 10% of a download of known size. */
  onMilestone?: (stage: string, done: number, total: number, text: string) => void;
  /** Draw the bar (it draws only on a terminal anyway). Default true. */
  bar?: boolean;
  now?: () => number;
}

export function createFetchProgress(title: string, options: FetchProgressOptions = {}): FetchProgress {
  const bar = options.bar === false ? undefined : createProgressBar(title);
  const now = options.now ?? (() => performance.now());
  let stage = '';
  let tenth = -1;
  // Speed counts the bytes of this run only, not those resumed from an earlier one.
  let rate: { startedAt: number; startBytes: number } | undefined;

  return {
    onProgress(next, done, total) {
      if (next !== stage) {
        stage = next;
        tenth = -1;
        rate = next === 'download' ? { startedAt: now(), startBytes: done } : undefined;
      }
      const text = describe(stage, done, total, rate, now());
      // The bar needs a total; an unknown size shows as "all done so far".
      bar?.update(text, done, total > 0 ? total : Math.max(done, 1));
      const reached = stage === 'download' && total > 0 ? Math.floor((done / total) * 10) : 0;
      if (reached > tenth) {
        tenth = reached;
        options.onMilestone?.(stage, done, total, text);
      }
    },
    stop() {
      bar?.stop();
    },
  };
}

export function describe(stage: string, done: number, total: number, rate: { startedAt: number; startBytes: number } | undefined, at: number): string {
  if (stage === 'verify') return `checking md5 of ${(total / MiB).toFixed(1)} MiB`;
  if (stage !== 'download') return total > 0 ? `${stage} ${done}/${total}` : stage;
  const size = total > 0 ? `${(done / MiB).toFixed(1)}/${(total / MiB).toFixed(1)} MiB (${Math.floor((done / total) * 100)}%)` : `${(done / MiB).toFixed(1)} MiB`;
  if (!rate) return `${stage} ${size}`;
  const seconds = (at - rate.startedAt) / 1000;
  const speed = seconds > 0.5 ? `, ${((done - rate.startBytes) / MiB / seconds).toFixed(1)} MiB/s` : '';
  return `${stage} ${size}${speed}`;
}
