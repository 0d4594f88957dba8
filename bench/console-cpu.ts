// Console cost (issue 14): what one open operator console costs the daemon with 100 calls live. The calls are the
// `calls` scenario's (bench/calls.ts: Asterisk-like callers streaming prompts, the daemon on the local Deepgram /
// OpenAI / Cartesia fakes, standalone store); while they run, the daemon's CPU is measured in alternating slices
// without and with one console open. The console here is the page's traffic without the browser: GET /api/calls every second,
// /api/levels every 500 ms, /api/headroom every 2 s, a call's /turns once (and again only if a turn was missed between polls), and one
// monitor WebSocket per live call (the page opens one per card). Printed, and written to bench/results-console.json.
//
// On a shared 2-core machine the daemon's CPU drifts by several % of a core over a minute (measured: two 20 s
// windows without a console 10 % of a core apart), more than a console costs. So the slices alternate — without,
// with one console, without, … — and the figure is the median of the adjacent pairs' differences.
//
//   npm run build && npx tsx bench/console-cpu.ts [--calls 100] [--pairs 6] [--slice 8]

import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { runCalls } from './calls.js';
import { BenchDaemon, ROOT } from './lib/daemon.js';
import { startFakes } from './lib/fakes.js';
import { load, machineInfo } from './lib/machine.js';
import { quantileSorted } from './lib/stats.js';

const TOKEN = 'bench-console-token';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

const CALLS = arg('calls', 100);
/** Pairs of slices (without, with one console) and the length of a slice. */
const PAIRS = arg('pairs', 6);
const SLICE_S = arg('slice', 8);
/** Seconds a console runs before its slice: monitors open, first timelines fetched. */
const SETTLE_S = 2;
const pct = (cores: number | undefined): string => `${((cores ?? 0) * 100).toFixed(1)} %`;
const log = (line: string): void => console.log(line);

/** The page's polling, with its request counts and the bytes it read. */
class ConsolePoller {
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly monitors = new Map<string, WebSocket>();
  /** The latest turn index seen per call: the page fetches a call's whole list once, then on a gap only. */
  private readonly turnIndex = new Map<string, number>();
  private lastHeadroom = 0;
  requests = 0;
  bytes = 0;
  monitorMessages = 0;
  errors = 0;

  constructor(
    private readonly base: string,
    /** Open a monitor WebSocket per call, as the page does (off: the polling alone, for the breakdown). */
    private readonly withMonitors: boolean,
  ) {}

  private async get(path: string): Promise<Record<string, unknown> | null> {
    try {
      const res = await fetch(`${this.base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const text = await res.text();
      this.requests++;
      this.bytes += text.length;
      if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      this.errors++;
      return null;
    }
  }

  start(): void {
    const every = (ms: number, fn: () => Promise<void>): void => {
      let busy = false;
      this.timers.push(
        setInterval(() => {
          if (busy) return;
          busy = true;
          void fn().finally(() => (busy = false));
        }, ms),
      );
    };
    every(1000, () => this.pollCalls());
    every(500, async () => void (await this.get('/api/levels')));
    every(2000, async () => {
      const body = await this.get(`/api/headroom?since=${this.lastHeadroom}`);
      const samples = (body?.samples ?? []) as Array<{ t: number }>;
      this.lastHeadroom = samples.at(-1)?.t ?? this.lastHeadroom;
    });
  }

  private async pollCalls(): Promise<void> {
    const body = await this.get('/api/calls');
    const calls = (body?.calls ?? []) as Array<{ id: string; last_turn: { index: number } | null }>;
    const live = new Set(calls.map((c) => c.id));
    const turnFetches: Array<Promise<unknown>> = [];
    for (const c of calls) {
      if (this.withMonitors && !this.monitors.has(c.id)) this.openMonitor(c.id);
      const index = c.last_turn?.index;
      if (index === undefined) continue;
      const known = this.turnIndex.get(c.id);
      const after = known === undefined ? Math.max(0, index - 20) : known;
      if (known === undefined || index > known + 1) turnFetches.push(this.get(`/api/calls/${c.id}/turns?after=${after}`));
      this.turnIndex.set(c.id, index);
    }
    for (const [id, ws] of this.monitors) {
      if (live.has(id)) continue;
      ws.close();
      this.monitors.delete(id);
      this.turnIndex.delete(id);
    }
    await Promise.all(turnFetches);
  }

  private openMonitor(id: string): void {
    const url = `${this.base.replace('http:', 'ws:')}/v1/pipecatcalls/${id}/ws?mode=monitor&token=${TOKEN}`;
    const ws = new WebSocket(url);
    ws.on('message', () => this.monitorMessages++);
    ws.on('error', () => this.errors++);
    this.monitors.set(id, ws);
  }

  stop(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
    for (const ws of this.monitors.values()) ws.close();
    this.monitors.clear();
  }
}

async function withConsoles<T>(consoles: ConsolePoller[], fn: () => Promise<T>): Promise<T> {
  for (const c of consoles) c.start();
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  try {
    return await fn();
  } finally {
    for (const c of consoles) c.stop();
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function cpuOver(daemon: BenchDaemon, seconds: number): Promise<number> {
  const a = await daemon.proc();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = await daemon.proc();
  return (b.cpuSeconds - a.cpuSeconds) / ((b.at - a.at) / 1000);
}

async function main(): Promise<void> {
  log(`console cost: ${CALLS} calls live, ${PAIRS} pairs of ${SLICE_S} s slices (without, with one console); ${cpus().length} cores, load ${load().join(' ')}`);
  const fakes = await startFakes();
  const daemon = await BenchDaemon.start({
    env: {
      HTTP_AUTH_TOKEN: TOKEN,
      UNKNOWN_CALLS: 'accept',
      TURN_MIN_STOP_SECS: '0.8',
      TURN_MAX_STOP_SECS: '0.8',
      TURN_PREEMPTIVE_GENERATION: 'off',
      TURN_FALSE_INTERRUPTION_SECS: '0',
      ...fakes.env,
    },
  });
  const base = `http://127.0.0.1:${daemon.httpPort}`;
  const consoles: ConsolePoller[] = [];
  const off: number[] = [];
  const on: number[] = [];
  try {
    let measuring: (() => void) | null = null;
    const rampDone = new Promise<void>((r) => (measuring = r));
    // The calls run for every slice plus margins; the slices start once every call is up.
    const calls = runCalls(daemon, fakes, {
      calls: CALLS,
      seconds: Math.ceil(PAIRS * (2 * SLICE_S + SETTLE_S + 1) + 10),
      quality: 'sinc_fastest',
      log: (line) => {
        log(line);
        if (line.includes('measuring for')) measuring?.();
      },
    });
    await rampDone;
    await new Promise((r) => setTimeout(r, 2000));
    for (let k = 0; k < PAIRS; k++) {
      off.push(await cpuOver(daemon, SLICE_S));
      const c = new ConsolePoller(base, true);
      consoles.push(c);
      on.push(await withConsoles([c], () => cpuOver(daemon, SLICE_S)));
      log(`  pair ${k + 1}: without ${pct(off[k])}, with one console ${pct(on[k])} of a core`);
    }
    const { result } = await calls;

    // Each pair's difference: adjacent slices share the machine's state, so drift between pairs cancels out.
    const diffs = on.map((v, k) => v - (off[k] ?? 0)).sort((x, y) => x - y);
    const median = quantileSorted(diffs, 0.5);
    const cores = cpus().length;
    const first = consoles[0];
    const out = {
      date: new Date().toISOString(),
      machine: machineInfo(),
      loadAtEnd: load(),
      calls: CALLS,
      callsLive: CALLS - result.failedToStart - result.refused - result.closedEarly,
      pairs: PAIRS,
      sliceSeconds: SLICE_S,
      daemonCores: { withoutConsole: off.map((v) => round(v)), withOneConsole: on.map((v) => round(v)) },
      /** Per pair: with minus without (cores), sorted. */
      pairDifferencesCores: diffs.map((v) => round(v)),
      /** The median pair difference: one console's cost, in cores. */
      consoleCostCores: round(median),
      consoleCostPercentOfOneCore: round(median * 100, 2),
      /** As a share of the machine's CPU (all cores): the issue asks < 1 %. */
      consoleCostPercentOfMachine: round((median / cores) * 100, 2),
      /** Spread of the pair differences (p25..p75, % of one core): the noise of this run. */
      spreadPercentOfOneCore: [round(quantileSorted(diffs, 0.25) * 100, 2), round(quantileSorted(diffs, 0.75) * 100, 2)],
      /** What one console did over one slice (and the settling seconds before it). */
      console: {
        requestsPerSecond: round((first?.requests ?? 0) / (SLICE_S + SETTLE_S)),
        kilobytesPerSecond: round((first?.bytes ?? 0) / 1024 / (SLICE_S + SETTLE_S)),
        monitorMessagesPerSecond: round((first?.monitorMessages ?? 0) / (SLICE_S + SETTLE_S)),
        errors: consoles.reduce((n, p) => n + p.errors, 0),
      },
      quality: { latenessP99Ms: result.lateness.steady.p99, machineCpuPressurePercent: result.machine.cpuPressurePercent },
    };
    log(
      `one console: ${pct(median)} of one core (median of ${PAIRS} pairs; p25..p75 ${out.spreadPercentOfOneCore.join('..')} %) = ` +
        `${out.consoleCostPercentOfMachine} % of the machine's ${cores} cores; ${out.console.requestsPerSecond} requests/s, ` +
        `${out.console.monitorMessagesPerSecond} monitor messages/s`,
    );
    writeFileSync(join(ROOT, 'bench', 'results-console.json'), `${JSON.stringify(out, null, 2)}\n`);
    log('written to bench/results-console.json');
  } finally {
    for (const p of consoles) p.stop();
    const code = await daemon.stop();
    if (code !== 0) log(`daemon exited with ${String(code)}: ${daemon.output.slice(-2000)}`);
    await fakes.close();
  }
}

function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
