/**
 * Small previews drawn once into a canvas: a 24-megapixel photo as an <img> would be decoded
 * and scaled on every layout, and twenty of them make the page stutter. A file the browser
 * cannot decode gets no preview (the card shows a placeholder) and logs nothing.
 */
const SIZE = 160;

export async function makeThumbnail(file: File): Promise<HTMLCanvasElement | null> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return null;
  }
  try {
    const scale = SIZE / Math.min(bitmap.width, bitmap.height);
    const width = Math.max(1, Math.round(bitmap.width * scale));
    const height = Math.max(1, Math.round(bitmap.height * scale));
    const canvas = document.createElement('canvas');
    canvas.width = SIZE * devicePixelRatio;
    canvas.height = SIZE * devicePixelRatio;
    const context = canvas.getContext('2d');
    if (!context) return null;
    context.scale(devicePixelRatio, devicePixelRatio);
    context.imageSmoothingQuality = 'high';
    // Centre crop, as the card's square frame shows it.
    context.drawImage(bitmap, (SIZE - width) / 2, (SIZE - height) / 2, width, height);
    return canvas;
  } finally {
    bitmap.close();
  }
}

/** Runs thumbnail jobs one after another, so a drop of fifty photos does not decode fifty at once. */
export class ThumbnailQueue {
  private tail: Promise<void> = Promise.resolve();

  add(file: File, done: (canvas: HTMLCanvasElement | null) => void): void {
    this.tail = this.tail.then(async () => done(await makeThumbnail(file)));
  }
}
