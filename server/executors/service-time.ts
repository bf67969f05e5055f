/**
 * A moving average of an executor's time per image, used to predict when a batch will finish.
 */
export class ServiceTimeEstimate {
  private perImageMs: number;
  private samples = 0;

  /**
   * @param initialPerImageMs prior used until the first measurement (e.g. the warm-up time)
   * @param overheadMs fixed cost per batch (message passing, network round trip)
   * @param weight how much one new measurement moves the average
   */
  constructor(
    initialPerImageMs: number,
    private overheadMs = 0,
    private readonly weight = 0.2,
  ) {
    this.perImageMs = initialPerImageMs;
  }

  observe(batchSize: number, elapsedMs: number): void {
    const perImage = Math.max(0, elapsedMs - this.overheadMs) / Math.max(1, batchSize);
    // The first real measurement replaces the prior outright: warm-up timings are rough.
    this.perImageMs = this.samples === 0 ? perImage : this.perImageMs + this.weight * (perImage - this.perImageMs);
    this.samples++;
  }

  setOverhead(ms: number): void {
    this.overheadMs = ms;
  }

  expectedMs(batchSize: number): number {
    return this.overheadMs + this.perImageMs * batchSize;
  }

  get perImage(): number {
    return this.perImageMs;
  }
}
