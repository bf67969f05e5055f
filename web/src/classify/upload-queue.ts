/**
 * Uploads a few images at a time. The hub queues fairly on its side; holding the rest here
 * keeps the browser's connection pool free for the page's own requests and means the hub's
 * queue shows only what is really waiting for an executor.
 */
export class UploadQueue {
  private readonly waiting: Array<() => Promise<void>> = [];
  private running = 0;

  constructor(private readonly concurrency: number) {}

  add(task: () => Promise<void>): void {
    this.waiting.push(task);
    this.next();
  }

  private next(): void {
    while (this.running < this.concurrency && this.waiting.length > 0) {
      const task = this.waiting.shift()!;
      this.running++;
      void task()
        .catch(() => {}) // each task reports its own failure on its card
        .finally(() => {
          this.running--;
          this.next();
        });
    }
  }
}
