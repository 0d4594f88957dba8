// OutputClock: one shared drift-corrected 20 ms timer — tick counts and spacing, no timer when idle, isolation
// from throwing sinks, and no burst after the event loop was blocked.

import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { OutputClock } from '../../src/audio/clock.js';
import { Metrics } from '../../src/metrics.js';

const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

class RecordingSink {
  readonly at: number[] = [];
  readonly late: number[] = [];
  tick(lateMs: number): void {
    this.at.push(performance.now());
    this.late.push(lateMs);
  }
}

function spacings(at: readonly number[]): number[] {
  return at.slice(1).map((t, i) => t - (at[i] as number));
}

let clock: OutputClock | undefined;
afterEach(() => clock?.close());

describe('OutputClock', () => {
  it('ticks 3 sinks ~50 times a second each, 20 ms apart on average', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    clock = new OutputClock({ metrics });
    const sinks = [new RecordingSink(), new RecordingSink(), new RecordingSink()];
    const unregister = sinks.map((s) => clock?.register(s));
    await sleep(1010);
    for (const u of unregister) u?.();
    // Sanity bounds only (a loaded test machine may stall the loop): the precise pacing figures are in the bench.
    for (const s of sinks) {
      expect(s.at.length).toBeGreaterThanOrEqual(25);
      expect(s.at.length).toBeLessThanOrEqual(52);
      const first = s.at[0] as number;
      const last = s.at[s.at.length - 1] as number;
      const mean = (last - first) / (s.at.length - 1);
      expect(mean).toBeGreaterThan(15);
      expect(mean).toBeLessThan(40);
    }
    const late = [...(sinks[0]?.late ?? [])].sort((a, b) => a - b);
    const sp = spacings(sinks[0]?.at ?? []).sort((a, b) => a - b);
    console.log(
      `clock: ${late.length} ticks, lateness p50 ${late[Math.floor(late.length / 2)]?.toFixed(2)} ms, ` +
        `max ${late[late.length - 1]?.toFixed(2)} ms; spacing min ${sp[0]?.toFixed(2)} max ${sp[sp.length - 1]?.toFixed(2)} ms`,
    );
    // One lateness observation per tick, not per sink.
    const hist = await metrics.outputFrameLateness.get();
    const count = hist.values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
    expect(count).toBe(clock.ticks);
  });

  it('leaves no timer once every sink has unregistered, and restarts on the next register', async () => {
    // Other timers (Vitest's) come and go, so compare synchronously around each (un)register.
    clock = new OutputClock();
    const sink = new RecordingSink();
    const idle = timeouts();
    const unregister = clock.register(sink);
    expect(timeouts()).toBe(idle + 1);
    const second = clock.register(new RecordingSink());
    expect(timeouts()).toBe(idle + 1); // one timer for all sinks
    await sleep(70);
    second();
    const running = timeouts();
    unregister();
    expect(timeouts()).toBe(running - 1);
    unregister(); // idempotent
    expect(timeouts()).toBe(running - 1);
    const ticked = sink.at.length;
    expect(ticked).toBeGreaterThanOrEqual(2);
    await sleep(60);
    expect(sink.at.length).toBe(ticked);
    const again = clock.register(sink);
    await sleep(50);
    expect(sink.at.length).toBeGreaterThan(ticked);
    const before = timeouts();
    again();
    expect(timeouts()).toBe(before - 1);
  });

  it('keeps ticking the other sinks when one throws', async () => {
    clock = new OutputClock();
    const good = new RecordingSink();
    clock.register({
      tick() {
        throw new Error('broken sink');
      },
    });
    clock.register(good);
    await sleep(110);
    expect(good.at.length).toBeGreaterThanOrEqual(4);
    expect(clock.sinkErrors).toBe(good.at.length);
  });

  it('survives sinks unregistering themselves and others during a tick', async () => {
    clock = new OutputClock();
    const counts = [0, 0, 0, 0];
    const unregs: Array<() => void> = [];
    for (let i = 0; i < 4; i++) {
      unregs.push(
        clock.register({
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
    await sleep(110);
    for (const u of unregs) u();
    expect(counts[3]).toBe(2);
    expect(counts[0]).toBe(1);
    // Sinks 1 and 2 never ticked twice in one slot: at most one tick per elapsed slot.
    expect(counts[1]).toBe(counts[2]);
    expect(clock.size).toBe(0);
  });

  it('does not burst after the event loop was blocked: skips to the current slot', async () => {
    clock = new OutputClock();
    const sink = new RecordingSink();
    clock.register(sink);
    await sleep(100);
    const blockedAt = performance.now();
    while (performance.now() - blockedAt < 300) {
      // block the loop for 300 ms: more than the 10 slots a burst may catch up
    }
    const beforeResume = sink.at.length;
    const resumedAt = performance.now();
    await sleep(100);
    const after = sink.at.slice(beforeResume);
    const elapsed = performance.now() - resumedAt;
    // No burst: after the block, at most one tick per elapsed slot (plus the one that woke late), whatever the load.
    expect(after.length).toBeGreaterThanOrEqual(1);
    expect(after.length).toBeLessThanOrEqual(Math.ceil(elapsed / 20) + 1);
    expect(clock.skippedTicks).toBeGreaterThanOrEqual(13); // 14–15 slots fell in the block; one is sent late
    // The tick that woke after the block reports it (as its real lateness), once: the grid then starts again.
    expect(sink.late.filter((l) => l >= 250)).toHaveLength(1);
  });

  it('catches up a short stall with a small burst so the stream stays on its grid', async () => {
    clock = new OutputClock();
    const sink = new RecordingSink();
    clock.register(sink);
    await sleep(200);
    const t0 = sink.at[0] ?? 0;
    const blockedAt = performance.now();
    while (performance.now() - blockedAt < 45) {
      // a 45 ms stall: two or three slots are missed
    }
    await sleep(200);
    expect(clock.skippedTicks).toBe(0);
    // Ticks stay on the grid anchored at the first one (tick i near t0 + 20·i): no permanent one-slot shift. The
    // median offset over the ticks after the stall is robust to a few ticks delayed by a loaded machine.
    const offsets = sink.at
      .map((t, i) => t - (t0 + 20 * i))
      .filter((_, i) => (sink.at[i] ?? 0) > blockedAt + 60)
      .sort((a, b) => a - b);
    expect(offsets.length).toBeGreaterThan(0);
    expect(offsets[Math.floor(offsets.length / 2)] ?? Infinity).toBeLessThan(10);
  });

  it('refuses registration after close()', () => {
    clock = new OutputClock();
    clock.close();
    clock.close();
    expect(() => clock?.register(new RecordingSink())).toThrow(/closed/);
  });
});
