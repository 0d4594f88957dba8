// Console cost (issue 14): what one open operator console costs the daemon with 100 calls live. The calls are the
// `calls` scenario's (bench/calls.ts: Asterisk-like callers streaming prompts, the daemon on the local Deepgram /
// OpenAI / Cartesia fakes, standalone store); while they run, the daemon's CPU is measured in three equal windows:
// without a console, with one console polling exactly as the page does, and without again (A/B/A, so drift of a
// shared machine shows). The console here is the page's traffic without the browser: GET /api/calls every second,
// /api/levels every 500 ms, /api/headroom every 2 s, a call's /turns once (and again only if a turn was missed between polls), and one
// monitor WebSocket per live call (the page opens one per card). Printed, and written to bench/results-console.json.
//
//   npm run build && npx tsx bench/console-cpu.ts [--calls 100] [--window 20]

import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { runCalls } from './calls.js';
import { BenchDaemon, ROOT } from './lib/daemon.js';
import { startFakes } from './lib/fakes.js';
import { load, machineInfo } from './lib/machine.js';

const TOKEN = 'bench-console-token';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

const CALLS = arg('calls', 100);
const WINDOW_S = arg('window', 20);
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

  constructor(private readonly base: string) {}

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
      if (!this.monitors.has(c.id)) this.openMonitor(c.id);
      const index = c.last_turn?.index;
      if (index === undefined) continue;
      const known = this.turnIndex.get(c.id);
      if (known === undefined || index > known + 1) turnFetches.push(this.get(`/api/calls/${c.id}/turns`));
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

async function cpuOver(daemon: BenchDaemon, seconds: number): Promise<number> {
  const a = await daemon.proc();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = await daemon.proc();
  return (b.cpuSeconds - a.cpuSeconds) / ((b.at - a.at) / 1000);
}

async function main(): Promise<void> {
  log(`console cost: ${CALLS} calls live, windows of ${WINDOW_S} s (off, on, off); ${cpus().length} cores, load ${load().join(' ')}`);
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
  const poller = new ConsolePoller(base);
  const windows: { off1: number; on: number; off2: number } = { off1: 0, on: 0, off2: 0 };
  try {
    let measuring: (() => void) | null = null;
    const rampDone = new Promise<void>((r) => (measuring = r));
    // The calls run for the three windows plus margins; the windows start once every call is up.
    const calls = runCalls(daemon, fakes, {
      calls: CALLS,
      seconds: WINDOW_S * 3 + 8,
      quality: 'sinc_fastest',
      log: (line) => {
        log(line);
        if (line.includes('measuring for')) measuring?.();
      },
    });
    await rampDone;
    await new Promise((r) => setTimeout(r, 2000));
    windows.off1 = await cpuOver(daemon, WINDOW_S);
    log(`  without a console: ${(windows.off1 * 100).toFixed(1)} % of a core`);
    poller.start();
    await new Promise((r) => setTimeout(r, 3000)); // the monitors open, the first timelines are fetched
    const requestsBefore = poller.requests;
    windows.on = await cpuOver(daemon, WINDOW_S);
    const requests = poller.requests - requestsBefore;
    poller.stop();
    log(`  with one console:  ${(windows.on * 100).toFixed(1)} % of a core (${(requests / WINDOW_S).toFixed(1)} requests/s)`);
    await new Promise((r) => setTimeout(r, 1000));
    windows.off2 = await cpuOver(daemon, WINDOW_S);
    log(`  without again:     ${(windows.off2 * 100).toFixed(1)} % of a core`);
    const { result } = await calls;

    const baseline = (windows.off1 + windows.off2) / 2;
    const costCores = windows.on - baseline;
    const cores = cpus().length;
    const out = {
      date: new Date().toISOString(),
      machine: machineInfo(),
      calls: CALLS,
      callsLive: CALLS - result.failedToStart - result.refused - result.closedEarly,
      windowSeconds: WINDOW_S,
      daemonCores: { withoutConsole: round(windows.off1), withConsole: round(windows.on), withoutConsoleAgain: round(windows.off2) },
      consoleCostCores: round(costCores),
      /** The cost as a share of the machine's CPU (all cores), the figure the "< 1 %" is about. */
      consoleCostPercentOfMachine: round((costCores / cores) * 100, 2),
      consoleCostPercentOfOneCore: round(costCores * 100, 2),
      /** How far the two windows without a console differ: the noise floor of this run. */
      noiseCores: round(Math.abs(windows.off1 - windows.off2)),
      console: {
        requestsPerSecond: round(poller.requests / (WINDOW_S + 3)),
        kilobytesPerSecond: round(poller.bytes / 1024 / (WINDOW_S + 3)),
        monitorMessages: poller.monitorMessages,
        errors: poller.errors,
      },
      quality: { latenessP99Ms: result.lateness.steady.p99, machineCpuPressurePercent: result.machine.cpuPressurePercent },
    };
    log(
      `console cost: ${(costCores * 100).toFixed(1)} % of one core = ${out.consoleCostPercentOfMachine} % of the machine's ${cores} cores ` +
        `(noise between the two windows without it: ${(out.noiseCores ?? 0) * 100} % of a core)`,
    );
    writeFileSync(join(ROOT, 'bench', 'results-console.json'), `${JSON.stringify(out, null, 2)}\n`);
    log('written to bench/results-console.json');
  } finally {
    poller.stop();
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
