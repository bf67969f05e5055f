/**
 * What a JPEG's header says before any pixel is decoded: frame size, components and the EXIF
 * orientation. Read in JS so that the common image (a plain colour or grey JPEG) needs one
 * libvips pipeline instead of a metadata pass first; anything this reader is unsure of is left
 * to sharp.
 */

export interface JpegHeader {
  /** As stored, before EXIF orientation. */
  width: number;
  height: number;
  /** 1: grey, 3: YCbCr or RGB, 4: CMYK or YCCK. */
  components: number;
  /** EXIF orientation 1–8; 1 when there is none. */
  orientation: number;
  /**
   * Sequential with Huffman coding (SOF0, SOF1): each component is read in one scan, so the
   * decoding time is bounded by the pixels. A progressive file may carry any number of scans.
   */
  sequential: boolean;
}

/** Markers that stand alone, with no length after them. */
const isStandalone = (marker: number) => marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8);
/** SOF0–SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range. */
const isFrameHeader = (marker: number) => marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;

/** The header of a JPEG, or null when `b` is not one or its markers end before a frame header. */
export function readJpegHeader(b: Uint8Array): JpegHeader | null {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  let orientation = 1;
  let at = 2;
  while (at + 4 <= b.length && b[at] === 0xff) {
    const marker = b[at + 1];
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (isStandalone(marker)) {
      at += 2;
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return null; // a scan or the end, and no frame header yet
    const length = (b[at + 2] << 8) | b[at + 3];
    if (isFrameHeader(marker)) {
      // Only its first fields are needed: a file cut right after them still tells its size.
      if (length < 8 || at + 10 > b.length) return null;
      return {
        height: (b[at + 5] << 8) | b[at + 6],
        width: (b[at + 7] << 8) | b[at + 8],
        components: b[at + 9],
        orientation,
        sequential: marker === 0xc0 || marker === 0xc1,
      };
    }
    if (length < 2 || at + 2 + length > b.length) return null;
    if (marker === 0xe1) orientation = exifOrientation(b.subarray(at + 4, at + 2 + length)) ?? orientation;
    at += 2 + length;
  }
  return null;
}

/** Tag 0x0112 of IFD0 in an APP1 payload that starts with "Exif\0\0"; undefined if absent or odd. */
function exifOrientation(app1: Uint8Array): number | undefined {
  if (app1.length < 14 || String.fromCharCode(...app1.subarray(0, 6)) !== 'Exif\0\0') return undefined;
  const tiff = new DataView(app1.buffer, app1.byteOffset + 6, app1.byteLength - 6);
  const order = tiff.getUint16(0);
  if (order !== 0x4949 && order !== 0x4d4d) return undefined;
  const little = order === 0x4949;
  const ifd = tiff.getUint32(4, little);
  if (ifd + 2 > tiff.byteLength) return undefined;
  const entries = tiff.getUint16(ifd, little);
  for (let i = 0; i < entries; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > tiff.byteLength) return undefined;
    if (tiff.getUint16(entry, little) !== 0x0112) continue;
    const value = tiff.getUint16(entry + 8, little);
    return tiff.getUint16(entry + 2, little) === 3 && value >= 1 && value <= 8 ? value : undefined;
  }
  return undefined;
}
