// The churn scenario (SPEC §13/§14 "no growth across 10,000 call lifecycles"): short Audiosocket calls — connect
// with a new UUID, a few paced frames, hang up — against the daemon, C at a time, after a warm-up of the same.
//
// Nothing inside the daemon is triggered (no forced GC): the heap "after GC" is read from outside by sampling
// /metrics every 100 ms while the lifecycles run and keeping, between two major GCs the daemon did by itself
// (nodejs_gc_duration_seconds_count{kind="major"} moved), the sample with the lowest heap outside the young
// generation (which fills and empties every few MB whatever is retained): the heap just after the GC. Baseline = the median of the first three such points of the measured lifecycles; after = the median of
// the last three (a scrape delayed under load reads high: the median ignores it); the least-squares slope over the
// run shows a leak if there is one. The warm-up is long (5,000 lifecycles) because a fresh daemon's RSS grows for
// its first ≈ 4,000 (V8 sizes its heap: committed heap 93 → 165 MiB; the allocator its arenas) and then levels
// off (measured over 20,000); the warm-up's own points are kept in the result.
// Live calls and descriptors are compared after a settle period with no calls.

import { randomUUID } from 'node:crypto';
import { AudiosocketClient } from '../src/transports/audiosocket/client.js';
import { KIND_AUDIO_8K, encodeMessage } from '../src/transports/audiosocket/protocol.js';
import { waitNoCalls } from './calls.js';
import { metric, type BenchDaemon } from './lib/daemon.js';
import { summarize, type Summary } from './lib/stats.js';

export interface ChurnOptions {
  lifecycles: number;
  concurrency: number;
  /** Audio frames each call sends before hanging up (20 ms apart). */
  frames: number;
  settleMs: number;
  /** Lifecycles run first and not counted: pools, JIT and lazily loaded modules reach their working size. */
  warmUp: number;
  /** Remote port → name, to sort the daemon's sockets by peer. */
  portNames: ReadonlyMap<number, string>;
  log: (line: string) => void;
}

export interface ResourceSnapshot {
  rssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
  activeCalls: number;
  fds: number;
  sockets: number;
  socketsByPeer: Record<string, number>;
}

export interface GcPoint {
  /** Lifecycles completed when the sample was taken (negative: during the warm-up). */
  lifecycles: number;
  /** Heap used outside the young generation (old, code and large-object spaces). */
  heapUsedBytes: number;
  /** V8's committed heap: RSS minus this is native memory (sockets, TLS, onnxruntime, allocator). */
  heapTotalBytes: number;
  rssBytes: number;
}

export interface ChurnResult {
  lifecycles: number;
  concurrency: number;
  seconds: number;
  perSecond: number;
  errors: number;
  firstError: string | null;
  /** Connect → the daemon closed our socket after the hangup (ms). */
  lifecycleMs: Summary;
  /** After the settle period before and after the run. */
  before: ResourceSnapshot;
  after: ResourceSnapshot;
  /** Heap used right after the daemon's own major GCs. */
  heapAfterGc: { baselineBytes: number; afterBytes: number; growthBytes: number; slopeBytesPer1000: number; points: GcPoint[] };
  /** RSS at the same moments. */
  rssAfterGc: { baselineBytes: number; afterBytes: number; growthPercent: number; slopeBytesPer1000: number };
  growth: { rssBytes: number; rssPercent: number; fds: number; sockets: number };
  callsTerminated: number;
}

async function snapshot(daemon: BenchDaemon, portNames: ReadonlyMap<number, string>): Promise<ResourceSnapshot> {
  const [proc, m, fds] = await Promise.all([daemon.proc(), daemon.metrics(), daemon.fds(portNames)]);
  return {
    rssBytes: proc.rssBytes,
    heapUsedBytes: metric(m, 'nodejs_heap_size_used_bytes'),
    externalBytes: metric(m, 'nodejs_external_memory_bytes'),
    activeCalls: metric(m, 'pipecat_manager_active_calls'),
    fds: fds.total,
    sockets: fds.sockets,
    socketsByPeer: fds.byPeer,
  };
}

const FRAME = encodeMessage(KIND_AUDIO_8K, Buffer.alloc(320, 1));

async function lifecycle(port: number, frames: number, uuids: string[]): Promise<number> {
  const uuid = randomUUID();
  uuids.push(uuid);
  const t0 = performance.now();
  const client = await AudiosocketClient.connect({ host: '127.0.0.1', port, uuid });
  try {
    for (let i = 0; i < frames; i++) {
      client.sendRaw(FRAME);
      await new Promise((r) => setTimeout(r, 20));
    }
    client.hangup();
    // The daemon ends the call and closes its side; a daemon that never does fails the run here.
    const closed = await Promise.race([client.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
    if (!closed) throw new Error('the daemon did not close the connection within 10 s of the hangup');
    return performance.now() - t0;
  } finally {
    client.destroy();
  }
}

/** Samples /metrics every 250 ms; keeps the first heap figure after each major GC. */
class GcWatcher {
  readonly points: GcPoint[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly daemon: BenchDaemon,
    private readonly progress: () => number,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let majors = -1;
    // The lowest heap seen since the last major GC: the heap just after it, give or take the young generation.
    let low: GcPoint | null = null;
    while (!this.stopped) {
      try {
        const [m, proc] = await Promise.all([this.daemon.metrics(), this.daemon.proc()]);
        const count = metric(m, 'nodejs_gc_duration_seconds_count{kind="major"}');
        const sample: GcPoint = {
          lifecycles: this.progress(),
          // Without the young generation, which fills and empties every few MB whatever is retained.
          heapUsedBytes: metric(m, 'nodejs_heap_size_used_bytes') - metric(m, 'nodejs_heap_space_size_used_bytes{space="new"}'),
          heapTotalBytes: metric(m, 'nodejs_heap_size_total_bytes'),
          rssBytes: proc.rssBytes,
        };
        if (majors >= 0 && count > majors) {
          if (low !== null) this.points.push(low);
          low = sample;
        } else if (low !== null && sample.heapUsedBytes < low.heapUsedBytes) {
          low = sample;
        }
        majors = count;
      } catch {
        // a scrape that failed under load: the next one will do
      }
      // 100 ms: at ≈ 400 lifecycles a second the daemon allocates a few MB in that time, the error of this method.
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

async function runLifecycles(
  daemon: BenchDaemon,
  count: number,
  concurrency: number,
  frames: number,
  uuids: string[],
  log: (line: string) => void,
  done: { n: number },
): Promise<{ durations: number[]; errors: number; firstError: string | null }> {
  const durations: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let started = 0;
  let lastLog = performance.now();
  const worker = async (): Promise<void> => {
    while (started < count) {
      started++;
      try {
        durations.push(await lifecycle(daemon.audiosocketPort, frames, uuids));
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
      done.n++;
      const now = performance.now();
      if (now - lastLog > 10_000) {
        lastLog = now;
        log(`  ${durations.length + errors} / ${count} lifecycles…`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  return { durations, errors, firstError };
}

/** Least-squares slope of `y` against lifecycles, in bytes per 1000 lifecycles. */
function slopePer1000(points: GcPoint[], y: (p: GcPoint) => number): number {
  if (points.length < 2) return Number.NaN;
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.lifecycles, 0) / n;
  const my = points.reduce((s, p) => s + y(p), 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.lifecycles - mx) * (y(p) - my);
    den += (p.lifecycles - mx) ** 2;
  }
  return den === 0 ? Number.NaN : (num / den) * 1000;
}

export async function runChurn(daemon: BenchDaemon, o: ChurnOptions): Promise<{ result: ChurnResult; uuids: string[] }> {
  const uuids: string[] = [];
  const done = { n: -o.warmUp };
  const watcher = new GcWatcher(daemon, () => done.n);
  if (o.warmUp > 0) await runLifecycles(daemon, o.warmUp, o.concurrency, o.frames, uuids, () => undefined, done);
  await waitNoCalls(daemon);
  await new Promise((r) => setTimeout(r, o.settleMs));
  const before = await snapshot(daemon, o.portNames);
  const terminatedBefore = metric(await daemon.metrics(), 'pipecat_manager_calls_terminated_total{reason="hangup"}');
  done.n = 0;
  const t0 = performance.now();
  const { durations, errors, firstError } = await runLifecycles(daemon, o.lifecycles, o.concurrency, o.frames, uuids, o.log, done);
  const seconds = (performance.now() - t0) / 1000;
  await watcher.stop();
  const left = await waitNoCalls(daemon, 30_000);
  if (left > 0) o.log(`  WARNING: ${left} calls still active 30 s after the last hangup`);
  await new Promise((r) => setTimeout(r, o.settleMs));
  const after = await snapshot(daemon, o.portNames);
  const terminatedAfter = metric(await daemon.metrics(), 'pipecat_manager_calls_terminated_total{reason="hangup"}');
  const run = watcher.points.filter((p) => p.lifecycles >= 0);
  const median = (ps: GcPoint[], y: (p: GcPoint) => number): number => {
    const v = ps.map(y).sort((a, b) => a - b);
    return v.length === 0 ? Number.NaN : (v[Math.floor(v.length / 2)] as number);
  };
  const head = run.filter((p) => p.lifecycles < o.lifecycles / 2);
  const tail = run.filter((p) => p.lifecycles >= o.lifecycles / 2);
  const baseline = median(head, (p) => p.heapUsedBytes);
  const last = median(tail, (p) => p.heapUsedBytes);
  const rssBaseline = median(head, (p) => p.rssBytes);
  const rssLast = median(tail, (p) => p.rssBytes);
  return {
    uuids,
    result: {
      lifecycles: o.lifecycles,
      concurrency: o.concurrency,
      seconds,
      perSecond: o.lifecycles / seconds,
      errors,
      firstError,
      lifecycleMs: summarize(durations),
      before,
      after,
      heapAfterGc: {
        baselineBytes: baseline,
        afterBytes: last,
        growthBytes: last - baseline,
        slopeBytesPer1000: slopePer1000(run, (p) => p.heapUsedBytes),
        points: watcher.points,
      },
      rssAfterGc: {
        baselineBytes: rssBaseline,
        afterBytes: rssLast,
        growthPercent: ((rssLast - rssBaseline) / rssBaseline) * 100,
        slopeBytesPer1000: slopePer1000(run, (p) => p.rssBytes),
      },
      growth: {
        rssBytes: after.rssBytes - before.rssBytes,
        rssPercent: ((after.rssBytes - before.rssBytes) / before.rssBytes) * 100,
        fds: after.fds - before.fds,
        sockets: after.sockets - before.sockets,
      },
      callsTerminated: terminatedAfter - terminatedBefore,
    },
  };
}
