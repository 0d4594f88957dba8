// AdmissionController on its own: hysteresis of the headroom signals (enter after two samples over the high mark,
// leave only after four samples all under the low marks), the MAX_CALLS cap, the forced signal, onChange.

import { afterEach, describe, expect, it } from 'vitest';
import { AdmissionController, DEFAULT_THRESHOLDS, LoopDelaySampler, OverloadedError } from '../../src/admission.js';
import { testLogger } from '../helpers/services.js';
import { Metrics } from '../../src/metrics.js';

let controller: AdmissionController | undefined;
afterEach(() => controller?.close());

// Only the worker backlog can trip here: the real loop-delay, clock and CPU signals of a loaded test machine
// must not decide the outcome.
const unreachable = { high: Number.POSITIVE_INFINITY, low: Number.POSITIVE_INFINITY };
const thresholds = { ...DEFAULT_THRESHOLDS, loopDelayP99Ms: unreachable, lateTickShare: unreachable, workerBusy: unreachable, cpu: unreachable, cpuPressure: unreachable };

async function until(check: () => boolean, what: string, timeoutMs = 6000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('AdmissionController', () => {
  it('enters overload on a sustained worker backlog, refuses with the reason, and leaves it with hysteresis', async () => {
    let backlog = 0;
    let calls = 0;
    const changes: boolean[] = [];
    controller = new AdmissionController({
      maxCalls: 0,
      headroom: true,
      sources: { activeCalls: () => calls, workers: () => ({ oldestBatchMs: backlog, busyMs: 0, workers: 1 }) },
      metrics: new Metrics({ defaultMetrics: false }),
      log: testLogger(),
      thresholds,
      onChange: (admitting) => changes.push(admitting),
    });
    controller.start();
    controller.admit()();
    calls++;
    backlog = 100;
    await until(() => controller?.refusal !== null, 'overload');
    expect(controller.refusal).toMatch(/^overload: workerBacklogMs 100 > 40/);
    expect(() => controller?.admit()).toThrow(OverloadedError);
    await expect(controller.readiness()).rejects.toThrow(/workerBacklogMs/);
    // Between the low and the high mark: still overloaded (no flapping).
    backlog = 20;
    await new Promise((r) => setTimeout(r, 2500));
    expect(controller.refusal).not.toBeNull();
    backlog = 0;
    await until(() => controller?.refusal === null, 'recovery');
    await expect(controller.readiness()).resolves.toBeUndefined();
    expect(changes).toEqual([false, true]);
  }, 15_000);

  it('CPU pressure (a machine whose runnable tasks wait for a core) enters overload; none lets it go', async () => {
    // The pressure counter grows by 60 % of wall time (someone always waiting), then stops growing.
    let growing = true;
    let pressureUs = 0;
    let at = performance.now();
    const pressure = (): number => {
      const now = performance.now();
      if (growing) pressureUs += (now - at) * 1000 * 0.9;
      at = now;
      return pressureUs;
    };
    controller = new AdmissionController({
      maxCalls: 0,
      headroom: true,
      sources: { activeCalls: () => 1, cpuPressureUs: pressure },
      metrics: new Metrics({ defaultMetrics: false }),
      log: testLogger(),
      thresholds: { ...thresholds, cpuPressure: DEFAULT_THRESHOLDS.cpuPressure },
    });
    controller.start();
    await until(() => controller?.refusal !== null, 'overload');
    expect(controller.refusal).toMatch(/^overload: cpuPressure 0\.\d+ > 0\.8/);
    growing = false;
    await until(() => controller?.refusal === null, 'recovery');
  }, 15_000);

  it('MAX_CALLS caps live calls; a forced overload refuses until lifted', () => {
    let calls = 0;
    const changes: boolean[] = [];
    controller = new AdmissionController({
      maxCalls: 2,
      headroom: false,
      sources: { activeCalls: () => calls },
      metrics: new Metrics({ defaultMetrics: false }),
      log: testLogger(),
      onChange: (admitting) => changes.push(admitting),
    });
    // A place is held from admit() until released, even before the call is counted as live.
    const first = controller.admit();
    expect(changes).toEqual([]);
    const second = controller.admit();
    expect(changes).toEqual([false]);
    expect(() => controller?.admit()).toThrow(/max_calls: 2 of MAX_CALLS=2/);
    calls += 2;
    first();
    second();
    second();
    expect(() => controller?.admit()).toThrow(/max_calls: 2 of MAX_CALLS=2/);
    calls--;
    controller.update();
    expect(controller.refusal).toBeNull();
    controller.forceOverload('maintenance');
    expect(() => controller?.admit()).toThrow(/forced overload: maintenance/);
    controller.forceOverload(null);
    // 1 live + 1 admitted = the cap, until that admission is released (the test counts no live call for it).
    controller.admit()();
    expect(changes).toEqual([false, true, false, true, false, true]);
    expect(() => new AdmissionController({ maxCalls: -1, headroom: false, sources: { activeCalls: () => 0 }, metrics: new Metrics({ defaultMetrics: false }), log: testLogger() })).toThrow(RangeError);
  });
});

describe('LoopDelaySampler', () => {
  it('reports the delay beyond its sampling period: an idle loop reads near 0, a blocked one its block', async () => {
    const sampler = new LoopDelaySampler(5);
    sampler.enable();
    try {
      await new Promise((r) => setTimeout(r, 300));
      // Raw, Node's histogram reads ≥ 5 ms at every percentile of an idle loop (its own period).
      expect(sampler.percentileMs(50)).toBeLessThan(2.5);
      sampler.reset();
      await new Promise((r) => setTimeout(r, 20));
      const until = performance.now() + 120;
      while (performance.now() < until) {
        // Busy: the loop is blocked for 120 ms.
      }
      await new Promise((r) => setTimeout(r, 20));
      expect(sampler.percentileMs(100)).toBeGreaterThan(100);
    } finally {
      sampler.disable();
    }
  });
});
