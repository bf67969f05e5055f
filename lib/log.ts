/**
 * The hub's structured logger: JSON lines on stdout, quiet at info (start-up, ready, warnings,
 * errors); per-request lines only at debug.
 */
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'resnet-hub' } });
}
