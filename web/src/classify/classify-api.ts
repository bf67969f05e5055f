/** One image to the hub's HTTP API, and its reply — or a reply-shaped error when the hub could not be reached. */
import type { ClassifyReply } from '../../../shared/protocol/classify.ts';
import { apiToken } from '../common/api-token.ts';

export interface ClassifyAnswer {
  reply: ClassifyReply | { error: { code: string; message: string } };
  /** From sending the first byte to having the whole reply, as this page saw it. */
  roundTripMs: number;
}

export const TOP = 3;

export async function classifyFile(file: File, requestId: string): Promise<ClassifyAnswer> {
  const url = new URL('/api/classify', window.location.href);
  url.searchParams.set('request_id', requestId);
  url.searchParams.set('top', String(TOP));
  const token = apiToken();
  const headers: Record<string, string> = { 'Content-Type': file.type || 'application/octet-stream' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const started = performance.now();
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', body: file, headers });
  } catch (error) {
    return failure(started, 'unreachable', `The hub could not be reached (${error instanceof Error ? error.message : String(error)}).`);
  }
  const text = await response.text();
  try {
    const reply = JSON.parse(text) as ClassifyAnswer['reply'];
    return { reply, roundTripMs: performance.now() - started };
  } catch {
    return failure(started, `http_${response.status}`, `The hub answered HTTP ${response.status} ${response.statusText} without a JSON reply.`);
  }
}

function failure(started: number, code: string, message: string): ClassifyAnswer {
  return { reply: { error: { code, message } }, roundTripMs: performance.now() - started };
}

/** Unique enough to find this page's requests among everyone's events; works outside secure contexts too. */
export function newRequestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}
