// The instance's headroom for the operator console: every SAMPLE_MS a sample of live calls, admitted/refused
// calls, event-loop delay p99, output clock lateness p99, the process's CPU and each core's busy share, kept in a
// ring of RING_SIZE samples (10 minutes). Sampling runs only while a console asks: it starts at the first request
// and stops after IDLE_STOP_MS without one, so an instance nobody watches pays nothing.

import { cpus, type CpuInfo } from 'node:os';
import { LoopDelaySampler } from '../admission.js';
import type { Metrics } from '../metrics.js';

export const SAMPLE_MS = 2_000;
export const RING_SIZE = 300;
const IDLE_STOP_MS = 10 * 60_000;

/** A cumulative histogram as prom-client reports it: bucket upper bounds (seconds) and cumulative counts. */
export interface Buckets {
  le: number[];
  counts: number[];
}

export interface HeadroomSources {
  liveCalls(): number;
  /** New calls admitted and refused since startup (cumulative). */
  admission(): { admitted: number; refused: number };
  /** The output clock's lateness histogram, cumulative. */
  clockLateness(): Promise<Buckets>;
}

/** The output clock's lateness histogram from the metrics, cumulative (the last bucket is +Inf). */
export async function clockLatenessBuckets(metrics: Metrics): Promise<Buckets> {
  const { values } = await metrics.outputFrameLateness.get();
  const buckets = values
    .filter((v) => v.metricName?.endsWith('_bucket') === true)
    .map((v) => ({ le: v.labels.le === '+Inf' ? Infinity : Number(v.labels.le), count: v.value }))
    .sort((a, b) => a.le - b.le);
  return { le: buckets.map((b) => b.le), counts: buckets.map((b) => b.count) };
}

export interface HeadroomSample {
  /** Epoch milliseconds. */
  t: number;
  calls: number;
  /** Cumulative since startup; the page plots the change per sample. */
  admitted: number;
  refused: number;
  loop_delay_p99_ms: number;
  /** p99 of the frames written during the sample, interpolated within the histogram's bucket. */
  clock_late_p99_ms: number;
  /** This process's CPU time over the sample, in cores (1 = one core busy). */
  process_cpu: number;
  /** Each core's busy share (0..1) over the sample, machine-wide. */
  core_busy: number[];
}

/**
 * The q-quantile (0..1) of the observations between two readings of a cumulative histogram, linearly interpolated
 * inside its bucket; 0 when nothing was observed. Observations past the last bound count as the last bound.
 */
export function quantileBetween(before: Buckets | null, after: Buckets, q: number): number {
  const counts = after.counts.map((c, i) => c - (before?.counts[i] ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return 0;
  const rank = q * total;
  let prevCount = 0;
  let prevLe = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    const le = after.le[i] ?? Infinity;
    if (c >= rank) {
      if (!Number.isFinite(le)) return prevLe;
      return c === prevCount ? le : prevLe + ((le - prevLe) * (rank - prevCount)) / (c - prevCount);
    }
    prevCount = c;
    if (Number.isFinite(le)) prevLe = le;
  }
  return prevLe;
}

function coreBusy(prev: CpuInfo[], now: CpuInfo[]): number[] {
  return now.map((c, i) => {
    const p = prev[i];
    if (p === undefined) return 0;
    const idle = c.times.idle - p.times.idle;
    const total = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle -
      (p.times.user + p.times.nice + p.times.sys + p.times.irq + p.times.idle);
    return total > 0 ? Math.round(((total - idle) / total) * 1000) / 1000 : 0;
  });
}

export class HeadroomSampler {
  private readonly ring: HeadroomSample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private loop: LoopDelaySampler | null = null;
  private lastAsked = 0;
  private prev: { wall: number; cpu: NodeJS.CpuUsage; cores: CpuInfo[]; late: Buckets | null } | null = null;
  private sampling = false;

  constructor(
    private readonly sources: HeadroomSources,
    readonly sampleMs = SAMPLE_MS,
    private readonly idleStopMs = IDLE_STOP_MS,
  ) {}

  /** The samples newer than `since` (epoch ms), oldest first; starts sampling when it was stopped. */
  samples(since = 0): HeadroomSample[] {
    this.lastAsked = Date.now();
    this.start();
    const i = this.ring.findIndex((s) => s.t > since);
    return i < 0 ? [] : this.ring.slice(i);
  }

  get running(): boolean {
    return this.timer !== null;
  }

  /** Samples held, without counting as a request (for tests and diagnostics). */
  get size(): number {
    return this.ring.length;
  }

  private start(): void {
    if (this.timer !== null) return;
    // Beyond the sampler's own period, as admission reads it (the raw histogram would add 10 ms to every figure).
    this.loop = new LoopDelaySampler(10);
    this.loop.enable();
    this.prev = null;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.sampleMs);
    this.timer.unref();
  }

  /** Stops sampling (the ring is kept). Idempotent; the next request starts it again. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.loop?.disable();
    this.loop = null;
  }

  private async sample(): Promise<void> {
    if (this.sampling) return;
    if (Date.now() - this.lastAsked > this.idleStopMs) {
      this.stop();
      return;
    }
    this.sampling = true;
    try {
      const wall = performance.now();
      const cpu = process.cpuUsage();
      const cores = cpus();
      const late = await this.sources.clockLateness();
      const prev = this.prev;
      this.prev = { wall, cpu, cores, late };
      if (prev === null) return;
      const used = cpu.user - prev.cpu.user + cpu.system - prev.cpu.system;
      const loopP99 = this.loop === null ? 0 : this.loop.percentileMs(99);
      this.loop?.reset();
      const { admitted, refused } = this.sources.admission();
      this.ring.push({
        t: Date.now(),
        calls: this.sources.liveCalls(),
        admitted,
        refused,
        loop_delay_p99_ms: Math.round(loopP99 * 100) / 100,
        clock_late_p99_ms: Math.round(quantileBetween(prev.late, late, 0.99) * 1e5) / 100,
        process_cpu: Math.round((used / 1000 / (wall - prev.wall)) * 1000) / 1000,
        core_busy: coreBusy(prev.cores, cores),
      });
      if (this.ring.length > RING_SIZE) this.ring.splice(0, this.ring.length - RING_SIZE);
    } catch {
      // A sample that could not be read is skipped; the next one measures from this point.
      this.prev = null;
    } finally {
      this.sampling = false;
    }
  }
}
