/**
 * A progress bar on stderr for long work (model generation, downloads). Drawn only on a
 * terminal; elsewhere (CI, logs to a file) it stays silent and the caller logs stages.
 */
import cliProgress from 'cli-progress';

export interface ProgressBar {
  update(stage: string, done: number, total: number): void;
  stop(): void;
}

export function createProgressBar(title: string): ProgressBar {
  const bar = new cliProgress.SingleBar(
    {
      format: `${title} |{bar}| {percentage}% {stage}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let stopped = false;
  return {
    update(stage, done, total) {
      if (stopped) return;
      if (!started) {
        bar.start(total, done, { stage });
        started = true;
      }
      bar.setTotal(total);
      bar.update(done, { stage });
    },
    stop() {
      if (started && !stopped) bar.stop();
      stopped = true;
    },
  };
}
