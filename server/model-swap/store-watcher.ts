/**
 * Notices a new model in the store: the manifest's weights hash changes. The store is swapped
 * into place as a whole folder (lib's swapFolderIntoPlace), so a manifest that can be read
 * belongs to a complete store; a half-written one lives in a temporary folder and is never
 * seen here. Polling one small file's metadata is cheap and, unlike fs.watch, survives the
 * watched folder itself being replaced; a change is read only once it has held still for
 * the debounce interval, so a burst of replacements makes one notification.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST_JSON, readManifest } from '../../model-store/store.ts';
import type { ModelManifest } from '../../model-store/store.ts';

export interface StoreWatcherOptions {
  modelDir: string;
  /** The weights hash the hub serves now; a manifest with the same one is no news. */
  current: () => string;
  onNewModel: (manifest: ModelManifest) => void;
  /** Told of a store that cannot be read (it is tried again on the next change). */
  onUnreadable?: (error: unknown) => void;
  intervalMs?: number;
  debounceMs?: number;
}

export class StoreWatcher {
  private timer: NodeJS.Timeout | undefined;
  private lastSignature: string | undefined;
  private changedAt: number | undefined;
  private checking = false;

  constructor(private readonly options: StoreWatcherOptions) {}

  async start(): Promise<void> {
    this.lastSignature = await this.signature();
    this.timer = setInterval(() => void this.poll(), this.options.intervalMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The manifest's identity on disk: a replaced store has a new inode even with the same size and time. */
  private async signature(): Promise<string | undefined> {
    try {
      const info = await stat(path.join(this.options.modelDir, MANIFEST_JSON));
      return `${info.ino}:${info.size}:${info.mtimeMs}`;
    } catch {
      return undefined; // between the two renames of a swap, or no store: look again later
    }
  }

  private async poll(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const signature = await this.signature();
      if (signature !== this.lastSignature) {
        this.lastSignature = signature;
        this.changedAt = performance.now();
        return;
      }
      if (this.changedAt === undefined || signature === undefined) return;
      if (performance.now() - this.changedAt < (this.options.debounceMs ?? 500)) return;
      this.changedAt = undefined;
      const manifest = await readManifest(this.options.modelDir);
      if (manifest && manifest.weightsSha256 !== this.options.current()) this.options.onNewModel(manifest);
    } catch (error) {
      this.options.onUnreadable?.(error);
    } finally {
      this.checking = false;
    }
  }
}
