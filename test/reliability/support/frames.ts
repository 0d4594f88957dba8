// Timing of the frames a caller received, against the ideal 20 ms grid of the call (SPEC §14: measured at the
// receiving client, per frame).

export interface FrameTiming {
  frames: number;
  /** Span from the first to the last frame, ms. */
  spanMs: number;
  /** Largest interval between two consecutive frames, ms. */
  maxGapMs: number;
  /** Largest interval less the time this process waited for a CPU within it (see LoopStallMonitor), ms. */
  maxOwnGapMs: number;
  /** Lateness against the grid anchored at the earliest frame: p50, p99, max (ms). */
  p50LateMs: number;
  p99LateMs: number;
  maxLateMs: number;
  /** Frames more than 10 ms behind their slot (the CLI's frames_late). */
  late10: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/**
 * `at` are arrival times in ms (performance.now()) of consecutive frames; only those in [from, to] count.
 * `waitingMs(a, b)` says how long the process could not run between a and b (0 when not known).
 */
export function frameTiming(
  at: readonly number[],
  from = -Infinity,
  to = Infinity,
  waitingMs: (a: number, b: number) => number = () => 0,
): FrameTiming {
  const xs = at.filter((t) => t >= from && t <= to);
  let maxGap = 0;
  let maxOwn = 0;
  for (let i = 1; i < xs.length; i++) {
    const a = xs[i - 1] ?? 0;
    const b = xs[i] ?? 0;
    maxGap = Math.max(maxGap, b - a);
    if (b - a > 30) maxOwn = Math.max(maxOwn, b - a - waitingMs(a, b));
    else maxOwn = Math.max(maxOwn, b - a);
  }
  // Anchor the grid so that no frame is early: slot i is at t0 + 20 i.
  let t0 = Infinity;
  xs.forEach((t, i) => (t0 = Math.min(t0, t - 20 * i)));
  const late = xs.map((t, i) => t - t0 - 20 * i).sort((a, b) => a - b);
  return {
    frames: xs.length,
    spanMs: xs.length > 1 ? (xs[xs.length - 1] ?? 0) - (xs[0] ?? 0) : 0,
    maxGapMs: maxGap,
    maxOwnGapMs: maxOwn,
    p50LateMs: quantile(late, 0.5),
    p99LateMs: quantile(late, 0.99),
    maxLateMs: late[late.length - 1] ?? 0,
    late10: late.filter((x) => x > 10).length,
  };
}

export function describeTiming(t: FrameTiming): string {
  const f = (x: number): string => x.toFixed(1);
  return (
    `${t.frames} frames over ${f(t.spanMs / 1000)} s: max gap ${f(t.maxGapMs)} ms (${f(t.maxOwnGapMs)} ms less ` +
    `time without a CPU), lateness p50 ${f(t.p50LateMs)} p99 ${f(t.p99LateMs)} max ${f(t.maxLateMs)} ms, ` +
    `${t.late10} frames > 10 ms late`
  );
}

/**
 * The fewest frames a paced call may deliver between `from` and `to`: one per 20 ms slot, less the slots of the
 * time a measured thread had no CPU (the clock skips slots after a long stall rather than bursting), halved. A
 * sanity bound — the call keeps streaming — because `npm test` runs on loaded machines where the waiting time is
 * only partly measurable (a worker thread of the daemon competes too); the precise figures are the bench's.
 */
export function minimumFrames(from: number, to: number, waitingMs: (a: number, b: number) => number = () => 0): number {
  return Math.floor(((to - from - waitingMs(from, to)) / 20) * 0.5);
}
