/**
 * Checks that a file is a complete HDF5 file before h5wasm sees it: the HDF5 library's own
 * answers to a wrong or cut-off file are multi-line diagnostics (and a damaged file can abort
 * the wasm module), so the two common mistakes, "this is not HDF5" and "the download stopped
 * early", get a clear message here, from the superblock alone.
 *
 * Format reference: HDF5 File Format Specification, section II.A "Disk Format: Level 0A -
 * Format Signature and Superblock" (versions 0-3).
 */
import { open } from 'node:fs/promises';
import { KerasImportError } from './errors.ts';

const SIGNATURE = Uint8Array.of(0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a);

export interface Hdf5Header {
  /** Where the superblock starts (0, or after a user block of 512, 1024, 2048... bytes). */
  superblockOffset: number;
  superblockVersion: number;
  /** Bytes the file must have according to its superblock (base address + end-of-file address). */
  declaredSize: number | null;
  size: number;
}

/** Reads the superblock of `file`; throws KerasImportError when it is not (a complete) HDF5 file. */
export async function checkHdf5File(file: string): Promise<Hdf5Header> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const read = async (position: number, length: number): Promise<Buffer> => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      return buffer.subarray(0, bytesRead);
    };

    // The signature may sit behind a user block, at 0 or any power of two from 512 on.
    let offset = -1;
    for (let at = 0; at + SIGNATURE.length <= size; at = at === 0 ? 512 : at * 2) {
      if ((await read(at, SIGNATURE.length)).equals(SIGNATURE)) {
        offset = at;
        break;
      }
    }
    if (offset < 0) {
      if (size === 0) throw new KerasImportError(`${file} is empty, not an HDF5 file`);
      const head = await read(0, 16);
      throw new KerasImportError(`${file} is not an HDF5 file (no HDF5 signature; it starts with ${describeBytes(head)})`);
    }

    const block = await read(offset, 96); // larger than any superblock's fixed part
    if (block.length < 12) throw truncated(file, size, null);
    const version = block[8];
    let sizeOfOffsets: number;
    let eofField: number; // position of "End of File Address" inside the superblock
    let baseField: number;
    if (version === 0 || version === 1) {
      sizeOfOffsets = block[13];
      baseField = version === 0 ? 24 : 28;
      eofField = baseField + 2 * sizeOfOffsets;
    } else if (version === 2 || version === 3) {
      sizeOfOffsets = block[9];
      baseField = 12;
      eofField = baseField + 2 * sizeOfOffsets;
    } else {
      // A superblock version this code does not know: let the HDF5 library judge the file.
      return { superblockOffset: offset, superblockVersion: version, declaredSize: null, size };
    }
    if (![2, 4, 8].includes(sizeOfOffsets)) {
      throw new KerasImportError(`${file}: damaged HDF5 superblock (size of offsets ${sizeOfOffsets})`);
    }
    if (block.length < eofField + sizeOfOffsets) throw truncated(file, size, null);
    const base = readAddress(block, baseField, sizeOfOffsets);
    const eof = readAddress(block, eofField, sizeOfOffsets);
    const declaredSize = base === null || eof === null ? null : base + eof;
    if (declaredSize !== null && size < declaredSize) throw truncated(file, size, declaredSize);
    return { superblockOffset: offset, superblockVersion: version, declaredSize, size };
  } finally {
    await handle.close();
  }
}

/** Little-endian unsigned address; null for HDF5's "undefined address" (all bits set). */
function readAddress(block: Buffer, at: number, bytes: number): number | null {
  let value = 0n;
  let allOnes = true;
  for (let i = bytes - 1; i >= 0; i--) {
    value = (value << 8n) | BigInt(block[at + i]);
    if (block[at + i] !== 0xff) allOnes = false;
  }
  if (allOnes) return null;
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}

function truncated(file: string, size: number, declared: number | null): KerasImportError {
  const expected = declared === null ? 'its superblock is cut off' : `its HDF5 header says ${declared} bytes`;
  return new KerasImportError(`${file} is truncated: it has ${size} bytes but ${expected} (an interrupted download or copy?)`);
}

function describeBytes(head: Buffer): string {
  const text = head.toString('latin1');
  const printable = /^[\x20-\x7e\t\r\n]*$/.test(text);
  return printable ? JSON.stringify(text) : `bytes ${head.toString('hex').replace(/(..)/g, '$1 ').trim()}`;
}
