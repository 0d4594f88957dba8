// OutputClock: one shared drift-corrected 20 ms timer — tick counts and spacing, no timer when idle, isolation
// from throwing sinks, the catch-up of a short stall, no burst after a long one, and the I/O poll. Driven by a
// manual time source, so every figure here is exact whatever the machine's load; the real pacing is the bench's.

import { afterEach, describe, expect, it } from 'vitest';
import { OutputClock, pollOutputClocks, type TimeSource } from '../../src/audio/clock.js';
import { Metrics } from '../../src/metrics.js';
import { waitUntil } from '../helpers/wait.js';

/** Time that moves only when told to; timers fire in order of their due time, each at its due time. */
class ManualTime implements TimeSource {
  private t = 1000;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): number {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.timers.size;
  }

  /** Time passes with an event loop that keeps up: each timer fires at its due time. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= end && (due === undefined || entry[1].at < due[1].at)) due = entry;
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = end;
  }

  /** Time passes with the event loop blocked: no timer fires until the next advance(). */
  block(ms: number): void {
    this.t += ms;
  }
}

class RecordingSink {
  readonly at: number[] = [];
  readonly late: number[] = [];
  constructor(private readonly time: TimeSource) {}
  tick(lateMs: number): void {
    this.at.push(this.time.now());
    this.late.push(lateMs);
  }
}

let clock: OutputClock | undefined;
afterEach(() => clock?.close());

function setup(metrics?: Metrics): { time: ManualTime; clock: OutputClock } {
  const time = new ManualTime();
  clock = new OutputClock({ time, ...(metrics !== undefined ? { metrics } : {}) });
  return { time, clock };
}

describe('OutputClock', () => {
  it('ticks 3 sinks 50 times a second each, every 20 ms, half a millisecond early, on one timer', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const { time, clock: c } = setup(metrics);
    const start = time.now();
    const sinks = [new RecordingSink(time), new RecordingSink(time), new RecordingSink(time)];
    for (const s of sinks) c.register(s);
    expect(time.pending).toBe(1);
    time.advance(1000);
    for (const s of sinks) {
      expect(s.at).toHaveLength(50);
      // Tick i wakes at its slot minus EARLY_MS (0.5 ms) and says so.
      expect(s.at).toEqual(s.at.map((_, i) => start + 20 * (i + 1) - 0.5));
      expect(new Set(s.late)).toEqual(new Set([-0.5]));
    }
    expect(c.ticks).toBe(50);
    // One lateness observation per tick, not per sink.
    const hist = await metrics.outputFrameLateness.get();
    expect(hist.values.find((v) => v.metricName?.endsWith('_count'))?.value).toBe(50);
  });

  it('leaves no timer once every sink has unregistered, and restarts on the next register', () => {
    const { time, clock: c } = setup();
    const sink = new RecordingSink(time);
    const unregister = c.register(sink);
    const second = c.register(new RecordingSink(time));
    expect(time.pending).toBe(1); // one timer for all sinks
    time.advance(70);
    expect(sink.at).toHaveLength(3);
    second();
    expect(time.pending).toBe(1);
    unregister();
    expect(time.pending).toBe(0);
    unregister(); // idempotent
    expect(c.size).toBe(0);
    time.advance(60);
    expect(sink.at).toHaveLength(3);
    const again = c.register(sink);
    expect(time.pending).toBe(1);
    time.advance(50);
    expect(sink.at).toHaveLength(5);
    again();
    expect(time.pending).toBe(0);
  });

  it('keeps ticking the other sinks when one throws', () => {
    const { time, clock: c } = setup();
    const good = new RecordingSink(time);
    c.register({
      tick() {
        throw new Error('broken sink');
      },
    });
    c.register(good);
    time.advance(110);
    expect(good.at).toHaveLength(5);
    expect(c.sinkErrors).toBe(5);
  });

  it('survives sinks unregistering themselves and others during a tick', () => {
    const { time, clock: c } = setup();
    const counts = [0, 0, 0, 0];
    const unregs: Array<() => void> = [];
    for (let i = 0; i < 4; i++) {
      unregs.push(
        c.register({
          tick() {
            counts[i] = (counts[i] ?? 0) + 1;
            if (i === 3 && counts[3] === 2) {
              unregs[0]?.(); // one not yet visited this tick (iteration is backwards)
              unregs[3]?.(); // itself
            }
          },
        }),
      );
    }
    time.advance(110);
    for (const u of unregs) u();
    expect(counts).toEqual([1, 5, 5, 2]);
    expect(c.size).toBe(0);
  });

  it('does not burst after the event loop was blocked for long: skips to the current slot', () => {
    const { time, clock: c } = setup();
    const start = time.now();
    const sink = new RecordingSink(time);
    c.register(sink);
    time.advance(100); // 5 ticks
    time.block(300); // the loop is stuck: slots 6–20 pass
    time.advance(0); // the overdue timer fires once the loop runs again
    expect(sink.at).toHaveLength(6);
    // The wake reports its real lateness (slot 6 was due at +120 − 0.5), once; the 14 slots after it are skipped.
    expect(sink.late[5]).toBe(start + 400 - (start + 120));
    expect(c.skippedTicks).toBe(14);
    const resumedAt = time.now();
    time.advance(100);
    // The grid restarts at the wake: one tick per slot after it, no burst.
    expect(sink.at.slice(6)).toEqual([20, 40, 60, 80, 100].map((d) => resumedAt + d - 0.5));
  });

  it('catches up a short stall with a small burst so the stream stays on its grid', () => {
    const { time, clock: c } = setup();
    const start = time.now();
    const sink = new RecordingSink(time);
    c.register(sink);
    time.advance(200); // 10 ticks
    time.block(45); // slots 11 and 12 pass unserved
    time.advance(0);
    // The late wake sends the missed slots at once: 11 and 12 now (25 and 5 ms past their slots)…
    expect(sink.at).toHaveLength(12);
    expect([...sink.late.slice(10)].sort((a, b) => a - b)).toEqual([245 - 240, 245 - 220]);
    time.advance(100);
    // …and the ticks after it are where they were always due: tick i at start + 20·i − 0.5.
    expect(c.skippedTicks).toBe(0);
    expect(sink.at.slice(12)).toEqual([13, 14, 15, 16, 17].map((i) => start + 20 * i - 0.5));
  });

  it('runs a due tick from pollOutputClocks() without waiting for its timer', () => {
    const { time, clock: c } = setup();
    const sink = new RecordingSink(time);
    c.register(sink);
    pollOutputClocks();
    expect(sink.at).toHaveLength(0); // nothing due yet
    time.block(25); // the timer is due but the loop is busy with socket reads
    pollOutputClocks();
    expect(sink.at).toHaveLength(1);
    expect(time.pending).toBe(1); // the next slot is scheduled, the old timer cleared
    time.advance(15);
    expect(sink.at).toHaveLength(2);
  });

  it('refuses registration after close()', () => {
    const { time, clock: c } = setup();
    c.close();
    c.close();
    expect(() => c.register(new RecordingSink(time))).toThrow(/closed/);
  });

  it('ticks on the real time source by default', async () => {
    clock = new OutputClock();
    let ticks = 0;
    const unregister = clock.register({ tick: () => void ticks++ });
    // Liveness only: how well it keeps time on this machine is measured by the bench.
    await waitUntil('three ticks', () => ticks >= 3);
    unregister();
    expect(clock.size).toBe(0);
  });
});
