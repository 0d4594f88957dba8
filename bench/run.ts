// `npm run bench`: the SPEC §14 figures in one run, printed as a table and written to bench/results.json.
// Sections (default: micro,capacity,overload,churn,rpc): micro (calibration, resampler and VAD against LiveKit) ·
// capacity (most calls at the quality bar, searched) · overload (twice the capacity, admission control on) ·
// calls (one load point of N calls, opt-in) · churn (short lifecycles) · rpc · setup (call setup under load,
// bench/setup-burst.ts, opt-in) · turns (turn-taking, bench/turns.ts, opt-in).
// Flags: --only a,b --calls N (100) --seconds S (30, the calls point) --churn N (2000) --capacity-start N (60)
// --capacity-max N (800) --capacity-seconds S (10 per point) --capacity-budget S (150 per build)
// --dist DIR (the build measured, default dist) --daemon-dist DIR (another build searched side by side, e.g. an older commit built to its own dist; repeatable)
// --quiet-wait S (60: how long to wait for other work to calm down) --profile (daemon --cpu-prof) --out FILE
// --daemon-log FILE (the tail of what the daemon printed at warn) --daemon-env NAME=VALUE (extra daemon setting,
// repeatable, for every daemon of the run: e.g. DSP_WORKERS=0) --daemon-node-arg FLAG (a Node.js flag for every
// daemon of the run, repeatable).

import { mkdtemp, writeFile } from 'node:fs/promises';
import { getPriority, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResamplerQuality } from '../src/config.js';
import { runOverload, searchCapacity, type CapacityResult, type OverloadResult } from './capacity.js';
import { capacityRows } from './capacity-table.js';
import { runCalls, type CallsResult } from './calls.js';
import { calibrationOf, normalize, type NormalizedCapacity } from './lib/calibration.js';
import { runChurn, type ChurnResult } from './churn.js';
import { runChild } from './lib/child.js';
import { BenchDaemon, ROOT } from './lib/daemon.js';
import { startFakes } from './lib/fakes.js';
import { cpuPressureAvg10, load, machineInfo } from './lib/machine.js';
import { createBenchServices } from './lib/services.js';
import type { MicroResult } from './micro.js';
import { runRpc, type RpcResult } from './rpc.js';
import { buildRows, formatRows } from './table.js';

interface Options {
  calls: number;
  seconds: number;
  churn: number;
  only: Set<string> | null;
  profile: boolean;
  out: string;
  quality: ResamplerQuality;
  dist: string;
  baselines: string[];
  capacityStart: number;
  capacityMax: number;
  capacitySeconds: number;
  capacityBudget: number;
  /** Seconds to wait for a quiet machine before load is measured. */
  quietWait: number;
  daemonLog: string;
  /** Extra daemon environment (`--daemon-env NAME=VALUE`, repeatable): e.g. DSP_WORKERS=0 to compare settings. */
  daemonEnv: Record<string, string>;
  /** Extra Node.js flags for every daemon of the run (`--daemon-node-arg FLAG`, repeatable): e.g. GC settings. */
  daemonNodeArgs: string[];
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    calls: 100,
    seconds: 30,
    churn: 2000,
    only: null,
    profile: false,
    out: join(ROOT, 'bench', 'results.json'),
    quality: 'sinc_fastest',
    dist: 'dist',
    baselines: [],
    capacityStart: 60,
    capacityMax: 800,
    capacitySeconds: 10,
    capacityBudget: 150,
    quietWait: 60,
    daemonLog: '',
    daemonEnv: {},
    daemonNodeArgs: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a ?? ''} needs a value`);
      return v;
    };
    const int = (v: string, name: string): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number, got ${v}`);
      return n;
    };
    switch (a) {
      case '--calls':
        o.calls = int(next(), '--calls');
        break;
      case '--seconds':
        o.seconds = int(next(), '--seconds');
        break;
      case '--churn':
        o.churn = int(next(), '--churn');
        break;
      case '--only':
        o.only = new Set(next().split(','));
        break;
      case '--profile':
        o.profile = true;
        break;
      case '--out':
        o.out = next();
        break;
      case '--daemon-dist':
        o.baselines.push(next());
        break;
      case '--capacity-start':
        o.capacityStart = Math.max(1, int(next(), '--capacity-start'));
        break;
      case '--capacity-max':
        o.capacityMax = Math.max(1, int(next(), '--capacity-max'));
        break;
      case '--capacity-seconds':
        o.capacitySeconds = Math.max(3, int(next(), '--capacity-seconds'));
        break;
      case '--capacity-budget':
        o.capacityBudget = int(next(), '--capacity-budget');
        break;
      case '--quiet-wait':
        o.quietWait = int(next(), '--quiet-wait');
        break;
      case '--daemon-log':
        o.daemonLog = next();
        break;
      case '--dist':
        o.dist = next();
        break;
      case '--daemon-node-arg':
        o.daemonNodeArgs.push(next());
        break;
      case '--daemon-env': {
        const v = next();
        const eq = v.indexOf('=');
        if (eq < 1) throw new Error(`--daemon-env takes NAME=VALUE, got ${v}`);
        o.daemonEnv[v.slice(0, eq)] = v.slice(eq + 1);
        break;
      }
      default:
        throw new Error(
          `unknown flag ${a ?? ''} (flags: --only micro,capacity,overload,calls,churn,rpc,setup,turns --calls N --seconds S --churn N ` +
            '--capacity-start N --capacity-max N --capacity-seconds S --capacity-budget S --quiet-wait S --daemon-dist DIR --dist DIR --daemon-env NAME=VALUE --daemon-node-arg FLAG --profile --out FILE --daemon-log FILE)',
        );
    }
  }
  return o;
}

const log = (line: string): void => console.log(line);

/**
 * The load sections judge each reply against a fixed `stop_secs` (added latency, premature turns): their daemons run
 * fixed endpointing (the VAD's 0.8 s stop ends every turn, barge-in cancels at once) with preemptive replies on —
 * the reply is prepared at the VAD's early pause and held until that stop, as a production daemon does by
 * default. Older builds ignore these variables (classic turns, the reply starts at the stop). Turn-taking itself
 * is measured by the `turns` section.
 */
const FIXED_TURNS = {
  TURN_MIN_STOP_SECS: '0.8',
  TURN_MAX_STOP_SECS: '0.8',
  TURN_PREEMPTIVE_GENERATION: 'on',
  TURN_FALSE_INTERRUPTION_SECS: '0',
};

/** Runs a standalone bench script (its own table and JSON) in a child process; a failure is reported, not fatal. */
async function runScript(file: string, args: string[], timeoutMs: number): Promise<string | null> {
  const { spawn } = await import('node:child_process');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', file), ...args], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve(code === 0 ? null : `${file} exited with ${String(code)}`);
    });
  });
}

/** Waits until the machine's CPU pressure (PSI some, 10 s average) is under 5 %, at most `maxMs`. */
async function waitForQuietMachine(maxMs: number, logLine: (line: string) => void): Promise<boolean> {
  const deadline = Date.now() + maxMs;
  let told = false;
  for (;;) {
    const avg10 = cpuPressureAvg10();
    if (Number.isNaN(avg10) || avg10 < 5) return true;
    if (Date.now() > deadline) {
      logLine(`  the machine is still busy (CPU pressure ${avg10.toFixed(0)} %): measuring anyway`);
      return false;
    }
    if (!told) logLine(`  other work is using the CPU (CPU pressure ${avg10.toFixed(0)} %): waiting up to ${maxMs / 1000} s for it to calm down…`);
    told = true;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** Forgets what the fakes recorded (every message, every session), so the next phase starts light. */
function resetFakes(fakes: Awaited<ReturnType<typeof startFakes>>): void {
  fakes.deepgram.reset();
  fakes.cartesia.messages.length = 0;
  fakes.cartesia.doneSent.length = 0;
  fakes.cartesia.cancels.length = 0;
  fakes.cartesia.upgrades.length = 0;
  fakes.cartesia.chunksSent.clear();
  (fakes.openai.requests as unknown[]).length = 0;
}

/**
 * The provider fakes run in this process and stand in for remote services, which would not take CPU from the
 * daemon's machine: while a daemon is measured this thread runs at nice 5 (the callers, standing in for Asterisk,
 * run raised; the daemon as it is started). Started after the daemon, so the daemon does not inherit it.
 */
function yieldToDaemon(): () => void {
  try {
    const before = getPriority(0);
    setPriority(0, Math.max(before, 5));
    return () => {
      try {
        setPriority(0, before);
      } catch {
        // Lowering the nice value back needs privileges; the rest of the run stays yielded.
      }
    };
  } catch {
    return () => undefined;
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const machine = machineInfo();
  const defaults = new Set(['micro', 'capacity', 'overload', 'churn', 'rpc']);
  const want = (s: string): boolean => (o.only === null ? defaults.has(s) : o.only.has(s));
  log(`pipecat-manager benchmark — ${machine.cores} × ${machine.cpuModel}, Node ${machine.node}, load ${machine.loadAtStart.join(' ')}`);

  const results: Record<string, unknown> = {
    machine,
    options: { calls: o.calls, seconds: o.seconds, churn: o.churn, quality: o.quality, daemon: o.dist, baselines: o.baselines, capacity: { start: o.capacityStart, max: o.capacityMax, seconds: o.capacitySeconds, budget: o.capacityBudget } },
  };
  const capacities: CapacityResult[] = [];
  let overload: OverloadResult | undefined;
  let calls: CallsResult | undefined;
  let churn: ChurnResult | undefined;
  let rpc: RpcResult | undefined;
  const micro: MicroResult[] = [];

  if (want('micro')) {
    log('micro: calibration (CPU loop, LiveKit resampler and Silero), resamplers and VAD (each in a child process)…');
    // Each in its own child; one that fails (or outlasts its timeout on a slow machine) is reported, not fatal.
    const microErrors: string[] = [];
    const run = async (args: string[]): Promise<void> => {
      try {
        micro.push(await runChild<MicroResult>('micro.ts', args, 300_000));
      } catch (err) {
        microErrors.push((err as Error).message);
        log(`  ${(err as Error).message}`);
      }
    };
    await run(['cpu-loop']);
    for (const q of ['sinc_fastest', 'sinc_medium', 'sinc_best'] as const) await run(['resampler', q]);
    await run(['vad']);
    await run(['vad-streams', '100']);
    await run(['peer-resampler']);
    await run(['peer-vad']);
    await run(['resampler-compare']);
    if (microErrors.length > 0) results.microErrors = microErrors;
    results.micro = micro;
  }

  if (want('capacity') || want('overload')) {
    log('capacity: starting MariaDB database, RabbitMQ vhost and the provider fakes…');
    const services = await createBenchServices();
    const fakes = await startFakes();
    const ids: string[] = [];
    const baseEnv = {
      DATABASE_DSN: `mysql://root@127.0.0.1:3306/${services.database}`,
      REDIS_ADDRESS: '127.0.0.1:6379',
      REDIS_DATABASE: String(services.redisDb),
      RABBITMQ_ADDRESS: services.rabbitUrl,
      UNKNOWN_CALLS: 'accept',
      RESAMPLER_QUALITY: o.quality,
      ...FIXED_TURNS,
      ...fakes.env,
      ...o.daemonEnv,
    };
    const withDaemon = async <T>(dist: string, env: Record<string, string>, fn: (d: BenchDaemon) => Promise<T>): Promise<T> => {
      const d = await BenchDaemon.start({ env: { ...baseEnv, ...env }, dist, nodeArgs: o.daemonNodeArgs });
      const restore = yieldToDaemon();
      try {
        return await fn(d);
      } finally {
        restore();
        const code = await d.stop();
        if (code !== 0) log(`daemon (${dist}) exited with ${String(code)}: ${d.output.slice(-2000)}`);
      }
    };
    try {
      results.quietAtCapacityStart = await waitForQuietMachine(o.quietWait * 1000, log);
      if (want('capacity')) {
        // The raw capacity: admission control off, so the search sees where quality gives out.
        for (const dist of [o.dist, ...o.baselines]) {
          const r = await withDaemon(dist, { ADMISSION_CONTROL: 'off' }, (d) =>
            searchCapacity(d, fakes, {
              build: dist,
              start: o.capacityStart,
              max: o.capacityMax,
              seconds: o.capacitySeconds,
              budgetSeconds: o.capacityBudget,
              quality: o.quality,
              log,
              between: () => resetFakes(fakes),
            }),
          );
          ids.push(...r.uuids);
          capacities.push(r.result);
          log(`  [${dist}] capacity ${r.result.capacity}${r.result.failedAt === null ? '+' : ` (failed at ${r.result.failedAt})`}`);
        }
        results.capacity = capacities;
      }
      if (want('overload')) {
        const capacity = capacities[0]?.capacity ?? o.capacityStart;
        const offered = Math.max(2, 2 * capacity);
        const r = await withDaemon(o.dist, { ADMISSION_CONTROL: 'on' }, (d) =>
          runOverload(d, fakes, { build: o.dist, offered, seconds: o.capacitySeconds, quality: o.quality, log }),
        );
        ids.push(...r.uuids);
        overload = r.result;
        results.overload = overload;
      }
    } finally {
      await fakes.close();
      const problems = await services.cleanup(ids);
      for (const p of problems) log(`cleanup: ${p}`);
    }
  }

  if (want('calls') || want('churn') || want('rpc')) {
    log('starting MariaDB database, RabbitMQ vhost, provider fakes (Cartesia behind TLS) and the daemon…');
    const services = await createBenchServices();
    const fakes = await startFakes();
    const ids: string[] = [];
    let daemon: BenchDaemon | undefined;
    let restorePriority = (): void => undefined;
    try {
      // CPU profiles go to a temp dir (they are large); its path is printed.
      const profDir = o.profile ? await mkdtemp(join(tmpdir(), 'pipecat-bench-prof-')) : '';
      if (o.profile) log(`daemon CPU profile (--cpu-prof) → ${profDir}`);
      daemon = await BenchDaemon.start({
        env: {
          DATABASE_DSN: `mysql://root@127.0.0.1:3306/${services.database}`,
          REDIS_ADDRESS: '127.0.0.1:6379',
          REDIS_DATABASE: String(services.redisDb),
          RABBITMQ_ADDRESS: services.rabbitUrl,
          UNKNOWN_CALLS: 'accept',
          RESAMPLER_QUALITY: o.quality,
          ...FIXED_TURNS,
          ...fakes.env,
          ...o.daemonEnv,
        },
        nodeArgs: [...o.daemonNodeArgs, ...(o.profile ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])],
        dist: o.dist,
      });
      log(`daemon pid ${daemon.pid} (audiosocket :${daemon.audiosocketPort}, metrics :${daemon.metricsPort})`);
      restorePriority = yieldToDaemon();
      if (want('calls')) {
        // The machine is shared: give other work up to 60 s to calm down, so the figures are the daemon's.
        const quiet = await waitForQuietMachine(o.quietWait * 1000, log);
        results.quietAtCallsStart = quiet;
        log(`calls: ${o.calls} concurrent calls, ${o.seconds} s measured…`);
        const r = await runCalls(daemon, fakes, { calls: o.calls, seconds: o.seconds, quality: o.quality, log });
        calls = r.result;
        ids.push(...r.uuids);
        results.calls = calls;
        resetFakes(fakes);
      }
      if (want('churn') && o.churn > 0) {
        log(`churn: ${o.churn} short call lifecycles, 32 at a time…`);
        const portNames = new Map<number, string>([
          [3306, 'mysql'],
          [6379, 'redis'],
          [5672, 'rabbitmq'],
          [fakes.deepgram.port, 'deepgram fake'],
          [fakes.openai.port, 'openai fake'],
          [Number(new URL(fakes.cartesiaTlsUrl).port), 'cartesia fake (tls)'],
        ]);
        const r = await runChurn(daemon, { lifecycles: o.churn, concurrency: 32, frames: 3, settleMs: 5000, warmUp: 5000, portNames, log });
        churn = r.result;
        ids.push(...r.uuids);
        results.churn = churn;
        resetFakes(fakes);
      }
      if (want('rpc')) {
        log('rpc: create + get round trips over RabbitMQ…');
        const r = await runRpc({ url: services.rabbitUrl, sequential: 300, workers: 16, seconds: 5, log });
        rpc = r.result;
        ids.push(...r.ids);
        results.rpc = rpc;
      }
    } finally {
      restorePriority();
      const code = await daemon?.stop();
      if (code !== 0 && daemon !== undefined) log(`daemon exited with ${String(code)}: ${daemon.output.slice(-2000)}`);
      else if (daemon !== undefined && daemon.output.trim() !== '') results.daemonWarnings = daemon.output.trim().split('\n').slice(-20);
      if (o.daemonLog !== '' && daemon !== undefined) await writeFile(o.daemonLog, daemon.output);
      await fakes.close();
      const problems = await services.cleanup(ids);
      for (const p of problems) log(`cleanup: ${p}`);
    }
  }

  // Opt-in sections with tables of their own: call setup under load (issue 9) and turn-taking (issue 13).
  if (want('setup')) {
    log('setup: greeting of the first call after start, and frame gaps of playing calls during a burst of setups…');
    const failed = await runScript('setup-burst.ts', [], 600_000);
    if (failed !== null) log(`setup: ${failed}`);
  }
  if (want('turns')) {
    log('turns: barge-in, false interruptions, voice-to-voice and premature replies with realistic provider delays…');
    const failed = await runScript('turns.ts', [], 900_000);
    if (failed !== null) log(`turns: ${failed}`);
  }

  const rows = buildRows({
    quality: o.quality,
    ...(calls === undefined ? {} : { calls }),
    ...(churn === undefined ? {} : { churn }),
    ...(rpc === undefined ? {} : { rpc }),
    micro,
  });
  const calibration = micro.length > 0 ? calibrationOf(micro) : undefined;
  const compare = micro.find((m) => m.kind === 'resampler-compare');
  const capacityTable = capacityRows({
    ...(calibration === undefined ? {} : { calibration }),
    capacity: capacities.map((result) => ({
      result,
      normalized: calibration === undefined ? null : (normalize(result.capacity, machine.cores, calibration) satisfies NormalizedCapacity),
    })),
    ...(overload === undefined ? {} : { overload }),
    ...(compare?.kind === 'resampler-compare' ? { resamplers: compare.entries } : {}),
  });
  rows.unshift(...capacityTable);
  results.calibration = calibration;
  results.table = rows;
  log('');
  log(formatRows(rows));
  // A shared machine: other work competing for the CPU shows up as lateness and latency the daemon did not cause.
  if (calls !== undefined) {
    const busy = calls.machine.cpuPressurePercent > 15 || calls.machine.stealCores > 0.1;
    results.callsFiguresRepresentative = !busy;
    if (busy) {
      log(
        `\nWARNING: other work competed for the CPU during the calls measurement (CPU pressure ${calls.machine.cpuPressurePercent.toFixed(0)} %, ` +
          `steal ${calls.machine.stealCores.toFixed(2)} cores): its lateness and latency figures are not representative; rerun on a quiet machine.`,
      );
    }
  }
  machine.loadAtEnd = load();
  results.durationSeconds = (performance.now() - started) / 1000;
  await writeFile(o.out, `${JSON.stringify(results, null, 2)}\n`);
  log(`\nload average at the end: ${machine.loadAtEnd.join(' ')}; wrote ${o.out}; the run took ${(results.durationSeconds as number).toFixed(0)} s`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
