// A log line that a peer can trigger at will (a flood of bad connections, EMFILE) is written at most once per
// interval; the next one says how many were suppressed meanwhile, so the log stays readable and cheap.

import type { Logger } from './log.js';

export class LogThrottle {
  private last = -Infinity;
  private suppressed = 0;

  constructor(private readonly intervalMs = 10_000) {}

  /** Writes the line now, or counts it when one was written less than the interval ago. */
  warn(log: Logger, fields: Record<string, unknown>, msg: string, now = performance.now()): void {
    if (now - this.last < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.last = now;
    const extra = this.suppressed > 0 ? { suppressed: this.suppressed } : {};
    this.suppressed = 0;
    log.warn({ ...fields, ...extra }, msg);
  }
}
