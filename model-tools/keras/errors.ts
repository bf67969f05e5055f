/**
 * The one error type for "this file cannot become the model": not HDF5, truncated, not a
 * Keras weights file, layers missing/extra/mis-shaped, checksum mismatch. Callers show its
 * message alone (no stack trace): it is about the user's file, not a bug in this code.
 */
export class KerasImportError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KerasImportError';
  }
}
