/**
 * Places for preprocessed images in memory the hub's threads share: a preprocess worker
 * writes an image into a slot, and the main thread reads it from there for as long as the
 * request runs, then gives the slot back.
 *
 * Why not a new buffer per image, transferred: V8 counts every buffer a thread receives as
 * new external memory and adds it to the old generation when deciding to start a full
 * collection. At 150 KB per image and ~120 images/s, that alone had the main thread run a
 * full mark-compact every 0.4 s (--trace-gc). Views into one SharedArrayBuffer count once.
 */

export class ImageSlots {
  readonly buffer: SharedArrayBuffer;
  private readonly free: number[];
  private readonly held: Uint8Array;

  constructor(
    readonly count: number,
    readonly slotBytes: number,
  ) {
    if (!(Number.isInteger(count) && count >= 0)) throw new RangeError(`slot count must be a whole number, got ${count}`);
    this.buffer = new SharedArrayBuffer(count * slotBytes);
    // Handed out lowest first, so a light load keeps to the first few pages.
    this.free = Array.from({ length: count }, (_, i) => count - 1 - i);
    this.held = new Uint8Array(count);
  }

  /** A free slot, now the caller's; undefined when all are taken (use a buffer of your own). */
  acquire(): number | undefined {
    const slot = this.free.pop();
    if (slot !== undefined) this.held[slot] = 1;
    return slot;
  }

  /** Gives a slot back: whatever still views it may see it overwritten. */
  release(slot: number): void {
    if (this.held[slot] !== 1) throw new Error(`image slot ${slot} released but not held`);
    this.held[slot] = 0;
    this.free.push(slot);
  }

  get inUse(): number {
    return this.count - this.free.length;
  }

  view(slot: number): Uint8Array {
    return slotView(this.buffer, slot, this.slotBytes);
  }
}

/** The bytes of one slot, from any thread that was given the buffer. */
export function slotView(buffer: SharedArrayBuffer, slot: number, slotBytes: number): Uint8Array {
  return new Uint8Array(buffer, slot * slotBytes, slotBytes);
}
