// The real daemon as a child process (node dist/cmd/pipecat-manager.js) on ephemeral ports, and what the bench
// reads from outside it: /metrics, /proc/<pid>/stat (CPU), /proc/<pid>/status (RSS), /proc/<pid>/fd (handles).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** Linux clock ticks per second for /proc/<pid>/stat (getconf CLK_TCK; 100 on every Linux/x86 and arm64). */
const CLK_TCK = 100;

export interface DaemonOptions {
  env: Record<string, string>;
  /** The build to run (default `dist`): another build of the daemon, for A/B comparisons. */
  dist?: string;
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=…']. */
  nodeArgs?: string[];
}

export interface ProcSample {
  at: number;
  cpuSeconds: number;
  rssBytes: number;
  /** Involuntary context switches of the main thread so far (preempted while runnable). */
  preemptions: number;
}

export type MetricSamples = Map<string, number>;

/** An ephemeral port that was free a moment ago (the daemon binds it right after). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolvePort(port));
    });
  });
}

export class BenchDaemon {
  private stderr = '';
  private constructor(
    readonly child: ChildProcess,
    readonly pid: number,
    readonly audiosocketPort: number,
    readonly httpPort: number,
    readonly metricsPort: number,
    private readonly cwd: string,
    readonly exited: Promise<number | null>,
    /**
     * Whether this build upsamples 8 → 16 kHz with the dedicated half-band filter (builds before it used
     * libsamplerate): the offline VAD that judges its turns must hear the same 16 kHz audio it did.
     */
    readonly halfband: boolean,
    /** Whether this build's VAD leaves the model out on long quiet stretches (src/providers/vad/silero.ts). */
    readonly skipsQuiet: boolean,
  ) {
    child.stderr?.on('data', (b: Buffer) => {
      this.stderr = (this.stderr + b.toString()).slice(-20_000);
    });
    // LOG_LEVEL=warn: whatever the daemon logs is a warning or an error; kept for the report.
    child.stdout?.on('data', (b: Buffer) => {
      this.stderr = (this.stderr + b.toString()).slice(-20_000);
    });
  }

  /** Warnings and errors the daemon printed (the tail). */
  get output(): string {
    return this.stderr;
  }

  static async start(options: DaemonOptions): Promise<BenchDaemon> {
    const [audiosocketPort, httpPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    // Its own working directory: the daemon reads a .env from its cwd, and a developer's must not leak in.
    const cwd = await mkdtemp(join(tmpdir(), 'pipecat-bench-daemon-'));
    const entry = join(resolve(ROOT, options.dist ?? 'dist'), 'cmd', 'pipecat-manager.js');
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), entry], {
      cwd,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/root',
        POD_IP: '127.0.0.1',
        AUDIOSOCKET_LISTEN_ADDRESS: `127.0.0.1:${audiosocketPort}`,
        HTTP_LISTEN_ADDRESS: `127.0.0.1:${httpPort}`,
        PROMETHEUS_LISTEN_ADDRESS: `127.0.0.1:${metricsPort}`,
        LOG_LEVEL: 'warn',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    const distDir = resolve(ROOT, options.dist ?? 'dist');
    const halfband = existsSync(join(distDir, 'audio', 'halfband-resampler.js'));
    const sileroJs = join(distDir, 'providers', 'vad', 'silero.js');
    const skipsQuiet = existsSync(sileroJs) && readFileSync(sileroJs, 'utf8').includes('QUIET_MODEL_WINDOWS');
    const d = new BenchDaemon(child, child.pid ?? 0, audiosocketPort, httpPort, metricsPort, cwd, exited, halfband, skipsQuiet);
    const deadline = Date.now() + 60_000;
    let dead = false;
    void exited.then(() => (dead = true));
    // Ready once /readyz answers 200: the HTTP server starts last, after MySQL, Redis, RabbitMQ and Audiosocket.
    for (;;) {
      if (dead) throw new Error(`the daemon exited during startup: ${d.output}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`the daemon was not ready within 60 s: ${d.output}`);
      }
      try {
        const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
        if (res.status === 200) break;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return d;
  }

  /** CPU seconds (user + system) and RSS, from /proc. */
  async proc(): Promise<ProcSample> {
    const [stat, status] = await Promise.all([
      readFile(`/proc/${this.pid}/stat`, 'utf8'),
      readFile(`/proc/${this.pid}/status`, 'utf8'),
    ]);
    // Fields after the parenthesised command name: state is field 3; utime 14, stime 15 (1-based).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 'NaN');
    const preemptions = Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 'NaN');
    return { at: performance.now(), cpuSeconds: (utime + stime) / CLK_TCK, rssBytes: rssKb * 1024, preemptions };
  }

  /**
   * Open file descriptors of the daemon, how many are sockets, and the TCP ones by peer: `portNames` names remote
   * ports (3306 → mysql…); a socket whose local port is the Audiosocket port is a call.
   */
  async fds(portNames: ReadonlyMap<number, string> = new Map()): Promise<{ total: number; sockets: number; byPeer: Record<string, number> }> {
    const dir = `/proc/${this.pid}/fd`;
    const names = await readdir(dir);
    const inodes: string[] = [];
    for (const n of names) {
      try {
        const link = await readlink(join(dir, n));
        if (link.startsWith('socket:[')) inodes.push(link.slice(8, -1));
      } catch {
        // closed while we looked
      }
    }
    // /proc/<pid>/net/tcp{,6}: "sl local_address rem_address st … inode"; addresses are HEX_IP:HEX_PORT.
    const peers = new Map<string, { local: number; remote: number; listening: boolean }>();
    for (const file of ['tcp', 'tcp6']) {
      const text = await readFile(`/proc/${this.pid}/net/${file}`, 'utf8').catch(() => '');
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length < 10) continue;
        const port = (addr: string | undefined): number => parseInt(addr?.split(':')[1] ?? '0', 16);
        peers.set(f[9] ?? '', { local: port(f[1]), remote: port(f[2]), listening: f[3] === '0A' });
      }
    }
    const byPeer: Record<string, number> = {};
    for (const inode of inodes) {
      const p = peers.get(inode);
      const name =
        p === undefined
          ? 'non-tcp'
          : p.listening
            ? 'listening'
            : p.local === this.audiosocketPort
              ? 'audiosocket'
              : p.local === this.metricsPort || p.local === this.httpPort
                ? 'metrics/http client'
                : (portNames.get(p.remote) ?? `port ${p.remote}`);
      byPeer[name] = (byPeer[name] ?? 0) + 1;
    }
    return { total: names.length, sockets: inodes.length, byPeer };
  }

  /** One scrape of /metrics: `name{labels}` → value. */
  async metrics(): Promise<MetricSamples> {
    // No keep-alive: a scrape must not leave a socket of its own in the daemon's descriptor count.
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, { headers: { connection: 'close' } });
    const text = await res.text();
    const out: MetricSamples = new Map();
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const sp = line.lastIndexOf(' ');
      out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
    }
    return out;
  }

  /** SIGTERM and wait (the daemon ends live calls and exits 0; --cpu-prof is written then). */
  async stop(timeoutMs = 40_000): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    await rm(this.cwd, { recursive: true, force: true });
    return code;
  }
}

/** Value of a metric sample (0 when absent). */
export function metric(m: MetricSamples, name: string): number {
  return m.get(name) ?? 0;
}

/** Quantile estimate from a Prometheus histogram's cumulative buckets (linear inside the bucket), in its unit. */
export function histogramQuantile(m: MetricSamples, name: string, q: number, before?: MetricSamples): number {
  const buckets: Array<{ le: number; count: number }> = [];
  for (const [key, value] of m) {
    const match = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\}$`).exec(key);
    if (match === null) continue;
    const le = match[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(match[1]);
    buckets.push({ le, count: value - (before?.get(key) ?? 0) });
  }
  buckets.sort((a, b) => a.le - b.le);
  const total = buckets[buckets.length - 1]?.count ?? 0;
  if (total <= 0) return Number.NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return prevLe;
      const inBucket = b.count - prevCount;
      return inBucket <= 0 ? b.le : prevLe + ((rank - prevCount) / inBucket) * (b.le - prevLe);
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}
