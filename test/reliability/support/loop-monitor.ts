// This process's event loop and the CPU it was given, for telling a pacing fault of the App from a machine that
// was busy elsewhere: the App under test and the clients measuring it share one loop, and this 2-core machine
// may run other work. The kernel's per-thread schedstat says how long the main thread was runnable but waiting
// for a CPU (run_delay); that time is nobody's fault in the App.

import { readFileSync } from 'node:fs';

/** Cumulative ms the thread waited for a CPU: this process's main thread, or the main thread of `pid`. */
function runDelayMs(pid?: number): number {
  try {
    // "<ns on cpu> <ns waiting on a runqueue> <timeslices>"; a process's main thread has the process's id.
    const path = pid === undefined ? '/proc/thread-self/schedstat' : `/proc/${pid}/task/${pid}/schedstat`;
    const fields = readFileSync(path, 'utf8').trim().split(/\s+/);
    return Number(fields[1] ?? 0) / 1e6;
  } catch {
    return 0; // no schedstat (or the process is gone): nothing is excused
  }
}

export class LoopStallMonitor {
  readonly stalls: Array<{ at: number; ms: number; waitingMs: number }> = [];
  /** (time, cumulative run delay of this thread, then of each watched process) per tick. */
  private readonly samples: Array<[number, ...number[]]> = [];
  private readonly timer: NodeJS.Timeout;

  /** `pids`: other processes in the measured path (a child daemon) whose main thread may be kept off a CPU too. */
  constructor(
    private readonly thresholdMs = 30,
    private readonly pids: number[] = [],
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 5);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /**
   * How long a measured thread waited for a CPU between a and b (ms, performance.now()), at tick resolution: the
   * longest wait of this process's main thread and the watched processes' main threads.
   */
  waitingMs(a: number, b: number): number {
    let before: number[] | undefined;
    let after: number[] | undefined;
    for (const s of this.samples) {
      if (s[0] <= a) before = s;
      if (s[0] >= b) {
        after = s;
        break;
      }
    }
    if (before === undefined || after === undefined) return 0;
    let wait = 0;
    for (let i = 1; i < after.length; i++) wait = Math.max(wait, (after[i] ?? 0) - (before[i] ?? 0));
    return wait;
  }

  describe(origin: number): string {
    if (this.stalls.length === 0) return 'no event-loop stall';
    const list = this.stalls.map((s) => `+${(s.at - origin).toFixed(0)}: ${s.ms.toFixed(0)} (${s.waitingMs.toFixed(0)} waiting for a CPU)`);
    return `event-loop stalls over ${this.thresholdMs} ms, ms: ${list.join(', ')}`;
  }

  private sample(): void {
    const now = performance.now();
    const delay = runDelayMs();
    const last = this.samples[this.samples.length - 1];
    if (last !== undefined && now - last[0] > this.thresholdMs) this.stalls.push({ at: last[0], ms: now - last[0], waitingMs: delay - (last[1] ?? 0) });
    this.samples.push([now, delay, ...this.pids.map((pid) => runDelayMs(pid))]);
  }
}
