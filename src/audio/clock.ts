// The single shared 20 ms output clock (SPEC §2.4): one drift-corrected timer ticks every registered call, instead
// of one timer per call, so 100 calls cost one wake-up per 20 ms.

import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { FRAME_MS } from './pcm.js';

export interface ClockSink {
  /** Called once per slot; `lateMs` is how far past its slot this tick woke (the same value for every sink). */
  tick(lateMs: number): void;
}

/** Where the clock reads the time and sets its timer: the real ones by default, a manual one in tests. */
export interface TimeSource {
  /** Milliseconds on a monotonic scale (performance.now()). */
  now(): number;
  /** Calls `fn` once after `ms`; the handle is never undefined. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const REAL_TIME: TimeSource = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface OutputClockOptions {
  metrics?: Metrics;
  log?: Logger;
  /** Default 20 ms: one Audiosocket frame. */
  periodMs?: number;
  /** Default REAL_TIME. */
  time?: TimeSource;
}

interface Entry {
  sink: ClockSink;
  index: number;
  /** The tick number this sink last ran in: guards against a double tick when a removal reorders the array. */
  lastTick: number;
}

// Measured here (Node 20, 2 cores, one sink): asking for the exact delay wakes −0.25 ms median (libuv's cached loop
// time) with a ~3 ms tail; −1 ms wakes −1.25 ms median; −0.5 ms gave −0.7 ms median, p99 +0.4 ms. Early is
// harmless (the grid stays exact), late is what Asterisk hears.
const EARLY_MS = 0.5;
const LOG_EVERY_MS = 10_000;

/** Clocks with a tick pending: what pollOutputClocks() looks at. */
const pending = new Set<OutputClock>();

/**
 * Runs the tick of every clock whose slot is due, from whatever callback calls it. A timer only fires between
 * event-loop iterations, and a loaded loop spends many milliseconds per iteration handling socket reads (100 calls
 * send 5,000 frames a second): the tick would wait for all of them. I/O handlers call this after each read, so a
 * due tick runs within one callback of its slot instead (measured at 100 calls on 2 cores: the tick's own lateness
 * p99 4.0 → 1.0 ms, at the caller p99 6.6 → 3.7–4.5 ms; BENCHMARKS.md). Costs one performance.now() when nothing
 * is due.
 */
export function pollOutputClocks(): void {
  for (const clock of pending) clock.poll();
}
/** Missed slots caught up with a burst after a stall of up to 200 ms (GC, a provider starting); longer stalls skip. */
const MAX_CATCH_UP_SLOTS = 10;

export class OutputClock {
  private readonly periodMs: number;
  private readonly metrics: Metrics | undefined;
  private readonly log: Logger | undefined;
  private readonly time: TimeSource;
  private readonly entries: Entry[] = [];
  private timer: unknown;
  /** time.now() from which the pending tick may run (its slot minus EARLY_MS). */
  private dueAt = Number.POSITIVE_INFINITY;
  private start = 0;
  private slot = 0;
  private tickCount = 0;
  private skipped = 0;
  private errors = 0;
  private lastErrorLog = -Infinity;
  private closed = false;

  constructor(options: OutputClockOptions = {}) {
    this.periodMs = options.periodMs ?? FRAME_MS;
    this.metrics = options.metrics;
    this.log = options.log;
    this.time = options.time ?? REAL_TIME;
  }

  /** Registered sinks. */
  get size(): number {
    return this.entries.length;
  }

  /** Slots skipped because the event loop was blocked past a whole period (never sent as a burst). */
  get skippedTicks(): number {
    return this.skipped;
  }

  /** Ticks run since creation. */
  get ticks(): number {
    return this.tickCount;
  }

  /** Exceptions thrown by sinks (caught; the other sinks still ran). */
  get sinkErrors(): number {
    return this.errors;
  }

  /**
   * Adds a sink; its first tick is the next slot of the shared grid. Returns its unregister function
   * (idempotent). The timer exists only while at least one sink is registered.
   */
  register(sink: ClockSink): () => void {
    if (this.closed) throw new Error('OutputClock is closed');
    const entry: Entry = { sink, index: this.entries.length, lastTick: this.tickCount };
    this.entries.push(entry);
    if (this.entries.length === 1) {
      this.start = this.time.now();
      this.slot = 0;
      this.schedule();
    }
    return () => this.unregister(entry);
  }

  /** Stops the timer and forgets every sink. Idempotent. */
  close(): void {
    this.closed = true;
    for (const e of this.entries) e.index = -1;
    this.entries.length = 0;
    this.stopTimer();
  }

  private unregister(entry: Entry): void {
    const i = entry.index;
    if (i < 0) return;
    entry.index = -1;
    // Swap-remove: O(1) and no allocation; onTick's generation check keeps a moved sink from ticking twice.
    const last = this.entries.pop() as Entry;
    if (last !== entry) {
      this.entries[i] = last;
      last.index = i;
    }
    if (this.entries.length === 0) this.stopTimer();
  }

  /** Runs the pending tick now if its slot is due (see pollOutputClocks). */
  poll(): void {
    if (this.timer === undefined || this.time.now() < this.dueAt) return;
    this.time.clearTimeout(this.timer);
    this.onTimer();
  }

  private stopTimer(): void {
    if (this.timer !== undefined) this.time.clearTimeout(this.timer);
    this.timer = undefined;
    this.dueAt = Number.POSITIVE_INFINITY;
    pending.delete(this);
  }

  private schedule(): void {
    const deadline = this.start + (this.slot + 1) * this.periodMs;
    this.dueAt = deadline - EARLY_MS;
    const delay = Math.max(0, this.dueAt - this.time.now());
    this.timer = this.time.setTimeout(this.onTimer, delay);
    pending.add(this);
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.dueAt = Number.POSITIVE_INFINITY;
    pending.delete(this);
    const now = this.time.now();
    this.slot++;
    const late = now - (this.start + this.slot * this.periodMs);
    let missed = late >= this.periodMs ? Math.floor(late / this.periodMs) : 0;
    if (missed > MAX_CATCH_UP_SLOTS) {
      // Blocked for long: the missed slots are skipped, not caught up. A long burst would reach Asterisk faster
      // than real time and overflow its queue (it has no jitter buffer). Re-anchoring the grid on this wake also
      // keeps the next tick a whole period away instead of right behind this one.
      this.skipped += missed;
      this.start = now - this.slot * this.periodMs;
      missed = 0;
    }
    // A short stall (a GC pause, a converter being created) is caught up with a burst of at most
    // MAX_CATCH_UP_SLOTS extra frames, which Asterisk's queue absorbs: every call stays on its 20 ms grid
    // instead of being shifted a frame late for the rest of the call.
    for (let k = missed; k >= 0; k--) {
      const lateMs = late - k * this.periodMs;
      if (k > 0) this.slot++;
      this.runSinks(lateMs);
    }
    if (this.entries.length > 0 && this.timer === undefined && !this.closed) this.schedule();
  };

  private runSinks(late: number): void {
    const tick = ++this.tickCount;
    // One observation per tick, not per sink: every sink writes within the same wake, and the hot path stays cheap.
    this.metrics?.outputFrameLateness.observe(Math.max(0, late) / 1000);
    // Backwards, so a sink (un)registering during the tick cannot shift an unvisited sink past the cursor.
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const entry = this.entries[i];
      if (entry === undefined || entry.lastTick === tick) continue;
      entry.lastTick = tick;
      try {
        entry.sink.tick(late);
      } catch (err) {
        this.sinkFailed(err);
      }
    }
  }

  private sinkFailed(err: unknown): void {
    this.errors++;
    const now = this.time.now();
    if (now - this.lastErrorLog >= LOG_EVERY_MS) {
      this.lastErrorLog = now;
      this.log?.error({ err, sink_errors: this.errors }, 'output clock sink threw; other sinks carry on');
    }
  }
}
