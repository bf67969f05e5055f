/**
 * One progress bar on stderr: steps done out of the plan, the current step and what it is
 * doing, and seconds in that step. cli-progress draws nothing when stderr is not a terminal,
 * so logs and CI stay clean.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** Ends the current step (if any) and starts the next. */
  begin(step: string): void;
  /** What the current step is doing now. */
  detail(text: string): void;
  stop(): void;
}

const TICK_MS = 500;

/** `label` starts the line (`bench`, `soak`). */
export function createProgress(totalSteps: number, label = 'bench'): Progress {
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} steps | {phase} | {seconds}s`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      barsize: 24,
    },
    cliProgress.Presets.shades_classic,
  );
  let step = '';
  let detail = 'starting';
  let since = performance.now();
  let started = false;
  const payload = () => ({
    phase: step && detail ? `${step}: ${detail}` : step || detail,
    seconds: ((performance.now() - since) / 1000).toFixed(0),
  });
  bar.start(totalSteps, 0, payload());
  const timer = setInterval(() => bar.update(payload()), TICK_MS);
  timer.unref();
  return {
    begin(next) {
      step = next;
      detail = '';
      since = performance.now();
      if (started) bar.increment(1, payload());
      else bar.update(payload());
      started = true;
    },
    detail(text) {
      detail = text;
      bar.update(payload());
    },
    stop() {
      clearInterval(timer);
      bar.update(totalSteps, payload());
      bar.stop();
    },
  };
}
