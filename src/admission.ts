// Admission control: the instance takes a new call only while it has headroom, so the calls it already carries
// keep their quality when more are offered than it can serve. Headroom is sampled twice a second from the event
// loop delay, the output clock's late ticks, the DSP workers' backlog and the process CPU; MAX_CALLS is a hard
// cap on top. While not admitting, the owner leaves the shared RPC queue (another instance takes the creates),
// /readyz answers 503 with the reason, and new calls are refused with that reason.

import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge } from 'prom-client';
import { DependencyError } from './errors.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

/** What the controller reads; each source may be absent (its signal is then never the reason). */
export interface HeadroomSources {
  activeCalls(): number;
  /** Ticks of the output clock observed so far, and how many of them were later than 5 ms (cumulative). */
  clockTicks?(): Promise<{ ticks: number; late: number }>;
  /**
   * Linux pressure stall information: microseconds so far in which some runnable task waited for a CPU
   * (`/proc/pressure/cpu`, "some" total); undefined where the kernel has none.
   */
  cpuPressureUs?(): number | undefined;
  /** DSP workers: age of the oldest batch in a model run (ms), and their summed busy milliseconds. */
  workers?(): { oldestBatchMs: number; busyMs: number; workers: number } | undefined;
}

/**
 * Event-loop delay beyond the sampling period. Node's histogram records the whole interval between its timer's
 * wake-ups, so an idle loop reads as the resolution itself (5.07 ms at p50 with a 5 ms resolution, measured):
 * compared raw with a mark of a few ms, an idle instance would look overloaded and never leave overload.
 */
export class LoopDelaySampler {
  private readonly histogram: IntervalHistogram;

  constructor(private readonly resolutionMs = 5) {
    this.histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  }

  enable(): void {
    this.histogram.enable();
  }

  disable(): void {
    this.histogram.disable();
  }

  /** The delay at percentile `p` since the last reset (ms beyond the sampling period, ≥ 0). */
  percentileMs(p: number): number {
    if (this.histogram.count === 0) return 0;
    return Math.max(0, this.histogram.percentile(p) / 1e6 - this.resolutionMs);
  }

  reset(): void {
    this.histogram.reset();
  }
}

/** Overload thresholds: entering at `high`, leaving only when every signal is below `low` (hysteresis). */
export interface AdmissionThresholds {
  /** Event-loop delay p99 over a sample (ms beyond the sampler's period). */
  loopDelayP99Ms: { high: number; low: number };
  /** Share of output ticks later than 5 ms. */
  lateTickShare: { high: number; low: number };
  /** Oldest VAD batch still running on a worker (ms). */
  workerBacklogMs: { high: number; low: number };
  /** Busy share of the DSP workers (0..1). */
  workerBusy: { high: number; low: number };
  /** Process CPU as a share of all cores (0..1). */
  cpu: { high: number; low: number };
  /** Share of the time some runnable task waited for a CPU (0..1): the machine, not only this process, is full. */
  cpuPressure: { high: number; low: number };
}

/**
 * Chosen so the controller acts before the quality bar (lateness p99 < 5 ms, added latency p99 < 50 ms) is lost:
 * a loop delay p99 of 10 ms already makes some ticks late, a VAD batch 40 ms old delays a turn decision by a
 * window. Leaving overload needs every signal well below, for OVERLOAD_CLEAR_SAMPLES samples in a row.
 * CPU pressure counts every task on the machine waiting for a core; the pacing thread runs at a raised priority,
 * so those waits do not reach the wire, and the signal only says the machine is saturated. Measured on the 2-core
 * machine (BENCHMARKS.md): 33 % at capacity (203 calls at the bar), 54–60 % while 406 calls arrived at once, and
 * at 0.35 the instance refused after 62 of them.
 */
export const DEFAULT_THRESHOLDS: Readonly<AdmissionThresholds> = Object.freeze({
  loopDelayP99Ms: { high: 10, low: 4 },
  lateTickShare: { high: 0.01, low: 0.002 },
  workerBacklogMs: { high: 40, low: 15 },
  workerBusy: { high: 0.85, low: 0.65 },
  cpu: { high: 0.9, low: 0.75 },
  cpuPressure: { high: 0.8, low: 0.6 },
});

const SAMPLE_MS = 500;
/** An overload is declared when a signal is over its high mark in this many consecutive samples. */
const OVERLOAD_SAMPLES = 2;
const OVERLOAD_CLEAR_SAMPLES = 4;

/** The refusal of a new call: RPC creates answer 500 with this message; Audiosocket connections are closed. */
export class OverloadedError extends DependencyError {
  constructor(reason: string) {
    super('capacity', `this pipecat-manager instance takes no new calls right now: ${reason}`);
  }
}

export interface AdmissionOptions {
  /** Hard cap on live calls; 0 = none. */
  maxCalls: number;
  /** Off: only MAX_CALLS applies (headroom is still sampled and reported). */
  headroom: boolean;
  sources: HeadroomSources;
  metrics: Metrics;
  log: Logger;
  thresholds?: AdmissionThresholds;
  /** Called when the instance starts or stops admitting: leave or rejoin the shared queue. */
  onChange?: (admitting: boolean, reason: string) => void;
}

export class AdmissionController {
  private readonly loopDelay = new LoopDelaySampler();
  private readonly thresholds: AdmissionThresholds;
  private timer: NodeJS.Timeout | null = null;
  private overloadReason: string | null = null;
  private forced: string | null = null;
  private overSamples = 0;
  private clearSamples = 0;
  private admittingNow = true;
  private lastReason = '';
  private last = { wall: performance.now(), cpu: process.cpuUsage(), ticks: 0, late: 0, busyMs: 0, pressureUs: 0 };
  private sampling = false;
  private closed = false;
  /** Calls admitted but not yet counted by `activeCalls()` (their row is being written). */
  private reserved = 0;
  private readonly admitted: Counter;
  private readonly refused: Counter<'reason'>;
  private readonly admittingGauge: Gauge;
  /** New calls admitted and refused since startup (the counters' values, for the operator console). */
  readonly totals = { admitted: 0, refused: 0 };
  /** The latest figures, for /readyz and logs. */
  latest: Record<string, number> = {};

  constructor(private readonly o: AdmissionOptions) {
    if (!Number.isInteger(o.maxCalls) || o.maxCalls < 0) throw new RangeError(`maxCalls must be a whole number ≥ 0, got ${o.maxCalls}`);
    this.thresholds = o.thresholds ?? DEFAULT_THRESHOLDS;
    const registers = [o.metrics.registry];
    this.admitted = new Counter({ name: 'pipecat_manager_admission_admitted_total', help: 'New calls admitted', registers });
    this.refused = new Counter({
      name: 'pipecat_manager_admission_refused_total',
      help: 'New calls refused (max_calls: the MAX_CALLS cap; overload: no headroom)',
      labelNames: ['reason'] as const,
      registers,
    });
    this.admittingGauge = new Gauge({
      name: 'pipecat_manager_admission_admitting',
      help: '1 while this instance takes new calls, 0 while it refuses them (cap reached or overloaded)',
      registers,
    });
    this.admittingGauge.set(1);
  }

  /** Starts sampling headroom. */
  start(): void {
    if (this.closed || this.timer !== null) return;
    this.loopDelay.enable();
    this.last = {
      wall: performance.now(),
      cpu: process.cpuUsage(),
      ticks: 0,
      late: 0,
      busyMs: this.o.sources.workers?.()?.busyMs ?? 0,
      pressureUs: this.o.sources.cpuPressureUs?.() ?? 0,
    };
    this.timer = setInterval(() => void this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  /** Why new calls are refused right now, or null when they are admitted. */
  get refusal(): string | null {
    if (this.forced !== null) return `forced overload: ${this.forced}`;
    const active = this.o.sources.activeCalls() + this.reserved;
    if (this.o.maxCalls > 0 && active >= this.o.maxCalls) return `max_calls: ${active} of MAX_CALLS=${this.o.maxCalls} calls live`;
    // With no call live there is no call quality to protect, and the load is not ours (startup, a busy host):
    // refusing then would only keep an idle instance idle.
    if (this.o.headroom && this.overloadReason !== null && active > 0) return `overload: ${this.overloadReason}`;
    return null;
  }

  /**
   * Admits a new call or throws OverloadedError (counted either way). The admitted call holds a place under
   * MAX_CALLS until the returned function is called — once `activeCalls()` counts it, or its creation failed — so
   * concurrent creates cannot overshoot the cap. Idempotent.
   */
  admit(): () => void {
    const reason = this.refusal;
    if (reason !== null) {
      this.refused.inc({ reason: reason.startsWith('max_calls') ? 'max_calls' : 'overload' });
      this.totals.refused++;
      this.update();
      throw new OverloadedError(reason);
    }
    this.admitted.inc();
    this.totals.admitted++;
    this.reserved++;
    // The call just admitted may be the one that reaches the cap: leave the shared queue now, not at the next sample.
    this.update();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.reserved--;
      this.update();
    };
  }

  /** For /readyz: resolves while admitting, rejects with the reason otherwise. */
  readiness(): Promise<void> {
    const reason = this.refusal;
    return reason === null ? Promise.resolve() : Promise.reject(new Error(reason));
  }

  /** Operator/test switch: refuse new calls with `reason` until called with null. */
  forceOverload(reason: string | null): void {
    this.forced = reason;
    this.update();
  }

  /** Re-evaluates after a call started or ended; calls onChange on a change of state. */
  update(): void {
    if (this.closed) return;
    const reason = this.refusal;
    const admitting = reason === null;
    this.admittingGauge.set(admitting ? 1 : 0);
    if (admitting === this.admittingNow) return;
    this.admittingNow = admitting;
    this.lastReason = reason ?? `admitting again (${this.lastReason})`;
    this.o.log.warn({ admitting, reason: this.lastReason, ...this.latest }, admitting ? 'taking new calls again' : 'refusing new calls');
    this.o.onChange?.(admitting, this.lastReason);
  }

  private async sample(): Promise<void> {
    if (this.sampling || this.closed) return;
    this.sampling = true;
    try {
      const now = performance.now();
      const wall = now - this.last.wall;
      const cpu = process.cpuUsage(this.last.cpu);
      const clock = (await this.o.sources.clockTicks?.()) ?? { ticks: 0, late: 0 };
      const workers = this.o.sources.workers?.();
      const ticks = clock.ticks - this.last.ticks;
      const pressureUs = this.o.sources.cpuPressureUs?.();
      const figures = {
        loopDelayP99Ms: this.loopDelay.percentileMs(99),
        lateTickShare: ticks > 0 ? (clock.late - this.last.late) / ticks : 0,
        workerBacklogMs: workers?.oldestBatchMs ?? 0,
        workerBusy: workers !== undefined && workers.workers > 0 ? (workers.busyMs - this.last.busyMs) / (wall * workers.workers) : 0,
        cpu: (cpu.user + cpu.system) / 1000 / (wall * cpus().length),
        cpuPressure: pressureUs === undefined ? 0 : Math.max(0, pressureUs - this.last.pressureUs) / 1000 / wall,
      };
      this.loopDelay.reset();
      this.last = { wall: now, cpu: process.cpuUsage(), ticks: clock.ticks, late: clock.late, busyMs: workers?.busyMs ?? 0, pressureUs: pressureUs ?? 0 };
      this.latest = { ...figures, activeCalls: this.o.sources.activeCalls() };
      this.judge(figures);
      this.update();
    } catch (err) {
      this.o.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'admission: headroom sample failed');
    } finally {
      this.sampling = false;
    }
  }

  /** Hysteresis: over `high` for OVERLOAD_SAMPLES samples enters overload; all under `low` for longer leaves it. */
  private judge(figures: Record<keyof AdmissionThresholds, number>): void {
    const t = this.thresholds;
    const keys = Object.keys(t) as Array<keyof AdmissionThresholds>;
    const over = keys.find((k) => figures[k] > t[k].high);
    const allLow = keys.every((k) => figures[k] < t[k].low);
    if (this.overloadReason === null) {
      this.overSamples = over === undefined ? 0 : this.overSamples + 1;
      if (over !== undefined && this.overSamples >= OVERLOAD_SAMPLES) {
        this.overloadReason = `${over} ${round(figures[over])} > ${t[over].high}`;
        this.clearSamples = 0;
      }
    } else {
      this.clearSamples = allLow ? this.clearSamples + 1 : 0;
      if (this.clearSamples >= OVERLOAD_CLEAR_SAMPLES) {
        this.overloadReason = null;
        this.overSamples = 0;
      }
    }
  }

  /** Stops sampling. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.loopDelay.disable();
  }
}

const round = (v: number): number => Math.round(v * 1000) / 1000;

/** Output ticks so far and how many were later than 5 ms, read from the clock's lateness histogram. */
export async function clockTicksFromMetrics(metrics: Metrics): Promise<{ ticks: number; late: number }> {
  const { values } = await metrics.outputFrameLateness.get();
  let ticks = 0;
  let onTime = 0;
  for (const v of values) {
    if (v.metricName?.endsWith('_count') === true) ticks = v.value;
    else if (v.metricName?.endsWith('_bucket') === true && v.labels.le === 0.005) onTime = v.value;
  }
  return { ticks, late: ticks - onTime };
}

/** The "some" total of /proc/pressure/cpu (µs), or undefined where the kernel does not report CPU pressure. */
export function readCpuPressureUs(): number | undefined {
  try {
    const m = /^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}
