/** GET /api/status from the hub under soak; null when it does not answer in time (noted, not fatal). */
import type { StatusReport } from '../../shared/protocol/status.ts';

export interface StatusSource {
  /** http://host:port of the hub. */
  base: string;
  /** The Authorization header when the hub runs with --api-token. */
  headers: Record<string, string>;
}

const STATUS_TIMEOUT_MS = 3000;

export async function fetchStatus(source: StatusSource): Promise<StatusReport | null> {
  try {
    const response = await fetch(`${source.base}/api/status`, { headers: source.headers, signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
    if (!response.ok) return null;
    return (await response.json()) as StatusReport;
  } catch {
    return null;
  }
}
