/**
 * Calls `onTick` every `intervalMs`, driven by a worker so that background-tab timer throttling
 * does not delay it (see ticker-worker.ts); falls back to setInterval where workers fail.
 */
export class Ticker {
  private worker: Worker | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(intervalMs: number, onTick: () => void) {
    try {
      this.worker = new Worker(new URL('./ticker-worker.ts', import.meta.url), { type: 'module', name: 'volunteer-ticker' });
      this.worker.addEventListener('message', () => onTick());
      this.worker.addEventListener('error', () => {
        this.worker?.terminate();
        this.worker = undefined;
        this.timer ??= setInterval(onTick, intervalMs);
      });
      this.worker.postMessage({ intervalMs });
    } catch {
      this.timer = setInterval(onTick, intervalMs);
    }
  }

  dispose(): void {
    this.worker?.terminate();
    this.worker = undefined;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
