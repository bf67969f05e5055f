/** Messages between the main thread and a preprocessing worker thread. */
import type { ErrorCode } from '../../shared/protocol/errors.ts';

export interface PreprocessWorkerData {
  /** ImageSlots' memory: where an image with a `slot` is written. */
  slots: SharedArrayBuffer;
}

export interface PreprocessRequest {
  id: number;
  bytes: Uint8Array;
  maxPixels: number;
  /** The image slot to write the result into; absent: it comes back in a buffer of its own. */
  slot?: number;
}

export type PreprocessResponse =
  | { id: number; ok: true; rgb?: Uint8Array; width: number; height: number; format: string; ms: number }
  | { id: number; ok: false; code: ErrorCode; message: string; ms: number };
