/**
 * Parses a Content-Range header (RFC 9110 §14.4): `bytes 100-199/1000`, `bytes 100-199/*`
 * (total unknown) or, on a 416, `bytes *\/1000`. Null when it is missing or malformed, which
 * the downloader treats as "cannot trust this range".
 */
export type ContentRange =
  | { kind: 'range'; start: number; end: number; total: number | undefined }
  | { kind: 'unsatisfied'; total: number };

export function parseContentRange(header: string | undefined): ContentRange | null {
  if (!header) return null;
  const unsatisfied = /^bytes \*\/(\d+)$/i.exec(header.trim());
  if (unsatisfied) return { kind: 'unsatisfied', total: Number(unsatisfied[1]) };
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/i.exec(header.trim());
  if (!match) return null;
  const start = Number(match[1]);
  const end = Number(match[2]);
  const total = match[3] === '*' ? undefined : Number(match[3]);
  if (end < start || (total !== undefined && end >= total)) return null;
  return { kind: 'range', start, end, total };
}
