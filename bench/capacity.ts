// Capacity search (SPEC §14): the most concurrent calls one daemon sustains at the quality bar, found by load
// points of the calls scenario (calls.ts) — growing until a point fails, then bisecting — within a time budget.
// Also the overload point: offered twice the capacity with admission control on, how the admitted calls fare.

import type { ResamplerQuality } from '../src/config.js';
import { runCalls, waitNoCalls, type CallsResult } from './calls.js';
import type { BenchDaemon } from './lib/daemon.js';
import type { Fakes } from './lib/fakes.js';

/** The quality bar of SPEC §14. */
export const QUALITY_BAR = {
  latenessP99Ms: 5,
  latenessMaxMs: 20,
  addedP50Ms: 25,
  addedP99Ms: 50,
} as const;

export interface CapacityPoint {
  offered: number;
  live: number;
  pass: boolean;
  /** What missed the bar (empty when it passed). */
  misses: string[];
  latenessP99Ms: number;
  latenessMaxMs: number;
  addedP50Ms: number;
  addedP99Ms: number;
  turns: number;
  premature: number;
  noReply: number;
  dropped: number;
  refused: number;
  failed: number;
  daemonCores: number;
  cpuPressurePercent: number;
}

export interface CapacityResult {
  build: string;
  /** Most calls that passed (0 when none did). */
  capacity: number;
  /** The smallest offer that failed above it (null when none failed: capacity is at least `capacity`). */
  failedAt: number | null;
  points: CapacityPoint[];
  /** The search stopped on its time budget before the bracket was narrow. */
  budgetExhausted: boolean;
  seconds: number;
}

/** Judges one load point against the bar. Turns that got no reply and calls that broke count as failures. */
export function judge(offered: number, r: CallsResult): CapacityPoint {
  const misses: string[] = [];
  const lat = r.lateness.all;
  if (!(lat.p99 < QUALITY_BAR.latenessP99Ms)) misses.push(`lateness p99 ${lat.p99.toFixed(2)} ms`);
  if (!(lat.max < QUALITY_BAR.latenessMaxMs)) misses.push(`lateness max ${lat.max.toFixed(1)} ms`);
  const added = r.addedLatencyMs;
  if (added.n === 0) misses.push('no turn measured');
  else {
    if (!(added.p50 < QUALITY_BAR.addedP50Ms)) misses.push(`added latency p50 ${added.p50.toFixed(1)} ms`);
    if (!(added.p99 < QUALITY_BAR.addedP99Ms)) misses.push(`added latency p99 ${added.p99.toFixed(1)} ms`);
  }
  if (r.turns.premature > 0) misses.push(`${r.turns.premature} premature turns`);
  if (r.turns.noReply > 0) misses.push(`${r.turns.noReply} turns without reply`);
  const dropped = r.dropped.daemonDroppedFrames + r.dropped.clientMissingFrames;
  if (dropped > 0) misses.push(`${dropped} dropped frames`);
  if (r.dropped.underruns > 0) misses.push(`${r.dropped.underruns} underruns`);
  if (r.failedToStart > 0) misses.push(`${r.failedToStart} calls failed to start`);
  const brokeOff = r.closedEarly - r.refused;
  if (brokeOff > 0) misses.push(`${brokeOff} calls closed by the daemon mid-call`);
  return {
    offered,
    live: r.calls,
    pass: misses.length === 0,
    misses,
    latenessP99Ms: lat.p99,
    latenessMaxMs: lat.max,
    addedP50Ms: added.p50,
    addedP99Ms: added.p99,
    turns: added.n,
    premature: r.turns.premature,
    noReply: r.turns.noReply,
    dropped,
    refused: r.refused,
    failed: r.failedToStart,
    daemonCores: r.cpu.cores,
    cpuPressurePercent: r.machine.cpuPressurePercent,
  };
}

export interface SearchOptions {
  build: string;
  /** First load point. */
  start: number;
  /** Never offer more than this. */
  max: number;
  /** Measured seconds per point. */
  seconds: number;
  /** Stop starting new points after this many seconds. */
  budgetSeconds: number;
  quality: ResamplerQuality;
  log: (line: string) => void;
  /** Clears what the fakes recorded between points. */
  between: () => void;
}

/** Rough cost of one point (s): ramp ≈ 0.1 s a call, the window, hangups and the idle baseline. */
const pointCost = (calls: number, seconds: number): number => calls * 0.1 + seconds + 15;

export async function searchCapacity(daemon: BenchDaemon, fakes: Fakes, o: SearchOptions): Promise<{ result: CapacityResult; uuids: string[] }> {
  const started = performance.now();
  const elapsed = (): number => (performance.now() - started) / 1000;
  const points: CapacityPoint[] = [];
  const uuids: string[] = [];
  let lo = 0; // most calls that passed
  let hi: number | null = null; // fewest calls that failed
  let n = Math.min(o.start, o.max);
  let budgetExhausted = false;
  for (let k = 0; ; k++) {
    if (elapsed() + pointCost(n, o.seconds) > o.budgetSeconds && points.length > 0) {
      budgetExhausted = true;
      break;
    }
    o.log(`  [${o.build}] point ${k + 1}: ${n} calls…`);
    const r = await runCalls(daemon, fakes, { calls: n, seconds: o.seconds, quality: o.quality, log: () => undefined, warmUp: k === 0 });
    uuids.push(...r.uuids);
    o.between();
    await waitNoCalls(daemon);
    const p = judge(n, r.result);
    points.push(p);
    o.log(
      `    ${p.pass ? 'PASS' : 'FAIL'} — lateness p99 ${p.latenessP99Ms.toFixed(2)} / max ${p.latenessMaxMs.toFixed(1)} ms, ` +
        `added p50 ${p.addedP50Ms.toFixed(1)} / p99 ${p.addedP99Ms.toFixed(1)} ms, daemon ${p.daemonCores.toFixed(2)} cores` +
        (p.pass ? '' : `; ${p.misses.join(', ')}`),
    );
    if (p.pass) lo = Math.max(lo, n);
    else hi = hi === null ? n : Math.min(hi, n);
    // Grow by half until a point fails, then bisect until the bracket is within 10 % (or 5 calls).
    let next: number;
    if (hi === null) {
      if (n >= o.max) break;
      next = Math.min(o.max, Math.ceil(n * 1.5));
    } else {
      if (hi - lo <= Math.max(5, Math.ceil(lo * 0.1))) break;
      next = lo === 0 ? Math.max(1, Math.floor(hi / 2)) : Math.round((lo + hi) / 2);
    }
    n = next;
  }
  return { result: { build: o.build, capacity: lo, failedAt: hi, points, budgetExhausted, seconds: elapsed() }, uuids };
}

export interface OverloadResult {
  build: string;
  offered: number;
  admitted: number;
  refused: number;
  point: CapacityPoint;
  /** Why the daemon stopped taking calls, as it logged it (distinct reasons, first 5). */
  reasons: string[];
}

/** Offers `offered` calls with admission control on: the admitted ones must keep the bar, the rest be refused. */
export async function runOverload(daemon: BenchDaemon, fakes: Fakes, o: { build: string; offered: number; seconds: number; quality: ResamplerQuality; log: (line: string) => void }): Promise<{ result: OverloadResult; uuids: string[] }> {
  o.log(`  [${o.build}] overload: offering ${o.offered} calls with admission control on…`);
  const r = await runCalls(daemon, fakes, { calls: o.offered, seconds: o.seconds, quality: o.quality, log: () => undefined });
  await waitNoCalls(daemon);
  const point = judge(o.offered, r.result);
  o.log(`    admitted ${point.live}, refused ${point.refused}: ${point.pass ? 'the admitted calls kept the bar' : point.misses.join(', ')}`);
  const reasons = new Set<string>();
  for (const line of daemon.output.split('\n')) {
    if (!line.includes('refusing new calls')) continue;
    try {
      const reason = (JSON.parse(line) as { reason?: unknown }).reason;
      if (typeof reason === 'string') reasons.add(reason);
    } catch {
      // not a JSON log line
    }
  }
  return { result: { build: o.build, offered: o.offered, admitted: point.live, refused: point.refused, point, reasons: [...reasons].slice(0, 5) }, uuids: r.uuids };
}
