/**
 * What the hub under soak logs: its warnings and errors, counted by message (a soak that
 * passes with a hub logging errors is still worth a look), and the last lines, to show what
 * it was doing when it did not stop cleanly.
 */
import { UNTRAINED_WARNING } from '../../shared/protocol/status.ts';

const PINO_WARN = 40;
const LINES_KEPT = 30;

export class HubLog {
  /** `level 50: <msg>` → how many times. */
  readonly problems: Record<string, number> = {};
  private readonly last: string[] = [];

  readonly onLog = (entry: Record<string, unknown>): void => {
    this.last.push(JSON.stringify(entry).slice(0, 400));
    if (this.last.length > LINES_KEPT) this.last.shift();
    // With untrained weights the ready line and the weights notice are warnings: not news.
    if (Number(entry.level) < PINO_WARN || entry.msg === 'ready' || entry.msg === UNTRAINED_WARNING) return;
    const key = `level ${String(entry.level)}: ${String(entry.msg)}`;
    this.problems[key] = (this.problems[key] ?? 0) + 1;
  };

  lastLines(): string[] {
    return [...this.last];
  }
}
