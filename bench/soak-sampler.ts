// What the soak reads from outside the daemon while it runs (nothing inside it is triggered, no forced GC):
//
// - GC points: /metrics and /proc/<pid>/status every `intervalMs`; between two major GCs the daemon did by itself
//   (nodejs_gc_duration_seconds_count{kind="major"} moved) the sample with the lowest heap outside the young
//   generation is kept — the heap just after that GC — with RSS, anonymous RSS and external memory at that moment.
// - Resource samples (every `detailEveryMs`): descriptors and sockets by peer (/proc/<pid>/fd, net/tcp), active
//   libuv resources by type (prom-client's nodejs_active_resources: timers, TCP, pipes…), live sessions, threads,
//   /proc/<pid>/smaps_rollup (anonymous vs file-backed), and the daemon's process_memory_bytes gauges.

import { readFile } from 'node:fs/promises';
import { metric, type BenchDaemon, type MetricSamples } from './lib/daemon.js';

export interface GcPoint {
  /** Lifecycles completed when the sample was taken. */
  lifecycles: number;
  seconds: number;
  /** Heap used outside the young generation (old, code, large-object spaces). */
  heapOldBytes: number;
  heapTotalBytes: number;
  rssBytes: number;
  rssAnonBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
}

export interface ResourceSample {
  lifecycles: number;
  seconds: number;
  rssBytes: number;
  rssAnonBytes: number;
  rssFileBytes: number;
  threads: number;
  fds: number;
  sockets: number;
  socketsByPeer: Record<string, number>;
  /** libuv resources by type (Timeout, TCPSocketWrap, …) and their total. */
  resources: Record<string, number>;
  activeCalls: number;
  sessionsByTransport: Record<string, number>;
  /** The daemon's pipecat_manager_process_memory_bytes gauges by kind. */
  memory: Record<string, number>;
  /** Resident memory by mapping kind, from /proc/<pid>/smaps. */
  smaps: SmapsBreakdown;
  /** V8's committed heap, and by space (new, old, code, large_object…): RSS minus this is native memory. */
  heapTotalBytes: number;
  heapSpacesTotal: Record<string, number>;
}

export interface SmapsBreakdown {
  /** The brk heap: glibc's main malloc arena. */
  brkHeapBytes: number;
  /** Anonymous read-write mappings starting on a 64 MiB boundary: glibc's per-thread malloc arenas. */
  threadArenaBytes: number;
  threadArenas: number;
  /** Every other anonymous mapping (V8's heap pages, thread stacks, large mallocs, …). */
  otherAnonBytes: number;
  otherAnonMappings: number;
  fileBytes: number;
}

const ARENA_ALIGN = 64 * 1024 * 1024;

/** /proc/<pid>/smaps grouped: where the resident memory is. */
export async function smapsBreakdown(pid: number): Promise<SmapsBreakdown> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  const out: SmapsBreakdown = { brkHeapBytes: 0, threadArenaBytes: 0, threadArenas: 0, otherAnonBytes: 0, otherAnonMappings: 0, fileBytes: 0 };
  let kind: 'brk' | 'arena' | 'anon' | 'file' = 'anon';
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) {
      const start = parseInt(head[1] ?? '0', 16);
      const path = head[4] ?? '';
      if (path === '[heap]') kind = 'brk';
      else if (path !== '' && !path.startsWith('[anon')) kind = 'file';
      else if (head[3] === 'rw-p' && start % ARENA_ALIGN === 0) {
        kind = 'arena';
        out.threadArenas++;
      } else {
        kind = 'anon';
        out.otherAnonMappings++;
      }
      continue;
    }
    if (!line.startsWith('Rss:')) continue;
    const bytes = Number(/(\d+)/.exec(line)?.[1] ?? '0') * 1024;
    if (kind === 'brk') out.brkHeapBytes += bytes;
    else if (kind === 'arena') out.threadArenaBytes += bytes;
    else if (kind === 'anon') out.otherAnonBytes += bytes;
    else out.fileBytes += bytes;
  }
  return out;
}

async function procStatus(pid: number): Promise<{ rss: number; anon: number; file: number; threads: number }> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 'NaN') * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem'), threads: kb('Threads') / 1024 };
}

function labelled(m: MetricSamples, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  const prefix = `${name}{${label}="`;
  for (const [k, v] of m) if (k.startsWith(prefix)) out[k.slice(prefix.length, k.indexOf('"', prefix.length))] = v;
  return out;
}

export async function resourceSample(
  daemon: BenchDaemon,
  portNames: ReadonlyMap<number, string>,
  lifecycles: number,
  seconds: number,
): Promise<ResourceSample> {
  const [m, st, fds, smaps] = await Promise.all([daemon.metrics(), procStatus(daemon.pid), daemon.fds(portNames), smapsBreakdown(daemon.pid)]);
  return {
    lifecycles,
    seconds,
    rssBytes: st.rss,
    rssAnonBytes: st.anon,
    rssFileBytes: st.file,
    threads: st.threads,
    fds: fds.total,
    sockets: fds.sockets,
    socketsByPeer: fds.byPeer,
    resources: { ...labelled(m, 'nodejs_active_resources', 'type'), total: metric(m, 'nodejs_active_resources_total') },
    activeCalls: metric(m, 'pipecat_manager_active_calls'),
    sessionsByTransport: labelled(m, 'pipecat_manager_active_sessions_by_transport', 'transport'),
    memory: labelled(m, 'pipecat_manager_process_memory_bytes', 'kind'),
    smaps,
    heapTotalBytes: metric(m, 'nodejs_heap_size_total_bytes'),
    heapSpacesTotal: labelled(m, 'nodejs_heap_space_size_total_bytes', 'space'),
  };
}

export class SoakSampler {
  readonly gcPoints: GcPoint[] = [];
  readonly samples: ResourceSample[] = [];
  scrapeFailures = 0;
  private stopped = false;
  private readonly loop: Promise<void>;
  private readonly t0 = performance.now();

  constructor(
    private readonly daemon: BenchDaemon,
    private readonly portNames: ReadonlyMap<number, string>,
    private readonly progress: () => number,
    private readonly intervalMs: number,
    private readonly detailEveryMs: number,
  ) {
    this.loop = this.run();
  }

  get seconds(): number {
    return (performance.now() - this.t0) / 1000;
  }

  private async run(): Promise<void> {
    let majors = -1;
    let low: GcPoint | null = null;
    let lastDetail = Number.NEGATIVE_INFINITY;
    while (!this.stopped) {
      try {
        if (performance.now() - lastDetail >= this.detailEveryMs) {
          lastDetail = performance.now();
          this.samples.push(await resourceSample(this.daemon, this.portNames, this.progress(), this.seconds));
        }
        const [m, st] = await Promise.all([this.daemon.metrics(), procStatus(this.daemon.pid)]);
        const count = metric(m, 'nodejs_gc_duration_seconds_count{kind="major"}');
        const mem = labelled(m, 'pipecat_manager_process_memory_bytes', 'kind');
        const sample: GcPoint = {
          lifecycles: this.progress(),
          seconds: this.seconds,
          heapOldBytes: metric(m, 'nodejs_heap_size_used_bytes') - metric(m, 'nodejs_heap_space_size_used_bytes{space="new"}'),
          heapTotalBytes: metric(m, 'nodejs_heap_size_total_bytes'),
          rssBytes: st.rss,
          rssAnonBytes: st.anon,
          externalBytes: metric(m, 'nodejs_external_memory_bytes'),
          arrayBuffersBytes: mem.array_buffers ?? Number.NaN,
        };
        if (majors >= 0 && count > majors) {
          if (low !== null) this.gcPoints.push(low);
          low = sample;
        } else if (low !== null && sample.heapOldBytes < low.heapOldBytes) {
          low = sample;
        }
        majors = count;
      } catch {
        this.scrapeFailures++;
      }
      await new Promise((r) => setTimeout(r, this.intervalMs));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** Least-squares slope of y against x, per 1000 x. */
export function slopePer1000(points: ReadonlyArray<{ x: number; y: number }>): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? Number.NaN : (num / den) * 1000;
}

export function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  return v.length === 0 ? Number.NaN : (v[Math.floor(v.length / 2)] as number);
}
