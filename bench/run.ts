// `npm run bench`: the SPEC §14 figures in one run, printed as a table and written to bench/results.json.
// Sections: micro (resampler, VAD, LiveKit peers) · calls (N concurrent calls) · churn (short lifecycles) · rpc.
// Flags: --calls N (100) --seconds S (30) --churn N (10000) --only a,b --profile (daemon --cpu-prof) --out FILE
// --daemon-dist DIR (run another build of the daemon, e.g. an older one, for before/after figures)
// --daemon-log FILE (the tail of what the daemon printed at LOG_LEVEL=warn).

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResamplerQuality } from '../src/config.js';
import { runCalls, type CallsResult } from './calls.js';
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
  daemonLog: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    calls: 100,
    seconds: 30,
    churn: 10_000,
    only: null,
    profile: false,
    out: join(ROOT, 'bench', 'results.json'),
    quality: 'sinc_fastest',
    dist: 'dist',
    daemonLog: '',
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
        o.dist = next();
        break;
      case '--daemon-log':
        o.daemonLog = next();
        break;
      default:
        throw new Error(`unknown flag ${a ?? ''} (flags: --calls N --seconds S --churn N --only micro,calls,churn,rpc --profile --out FILE --daemon-dist DIR --daemon-log FILE)`);
    }
  }
  return o;
}

const log = (line: string): void => console.log(line);

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

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const machine = machineInfo();
  const want = (s: string): boolean => o.only === null || o.only.has(s);
  log(`pipecat-manager benchmark — ${machine.cores} × ${machine.cpuModel}, Node ${machine.node}, load ${machine.loadAtStart.join(' ')}`);

  const results: Record<string, unknown> = { machine, options: { calls: o.calls, seconds: o.seconds, churn: o.churn, quality: o.quality, daemon: o.dist } };
  let calls: CallsResult | undefined;
  let churn: ChurnResult | undefined;
  let rpc: RpcResult | undefined;
  const micro: MicroResult[] = [];

  if (want('calls') || want('churn') || want('rpc')) {
    log('starting MariaDB database, RabbitMQ vhost, provider fakes (Cartesia behind TLS) and the daemon…');
    const services = await createBenchServices();
    const fakes = await startFakes();
    const ids: string[] = [];
    let daemon: BenchDaemon | undefined;
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
          ...fakes.env,
        },
        nodeArgs: o.profile ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
        dist: o.dist,
      });
      log(`daemon pid ${daemon.pid} (audiosocket :${daemon.audiosocketPort}, metrics :${daemon.metricsPort})`);
      if (want('calls')) {
        // The machine is shared: give other work up to 60 s to calm down, so the figures are the daemon's.
        const quiet = await waitForQuietMachine(60_000, log);
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
      const code = await daemon?.stop();
      if (code !== 0 && daemon !== undefined) log(`daemon exited with ${String(code)}: ${daemon.output.slice(-2000)}`);
      else if (daemon !== undefined && daemon.output.trim() !== '') results.daemonWarnings = daemon.output.trim().split('\n').slice(-20);
      if (o.daemonLog !== '' && daemon !== undefined) await writeFile(o.daemonLog, daemon.output);
      await fakes.close();
      const problems = await services.cleanup(ids);
      for (const p of problems) log(`cleanup: ${p}`);
    }
  }

  if (want('micro')) {
    log('micro: resampler per quality, VAD, LiveKit peers (each in a child process)…');
    for (const q of ['sinc_fastest', 'sinc_medium', 'sinc_best'] as const) micro.push(await runChild<MicroResult>('micro.ts', ['resampler', q]));
    micro.push(await runChild<MicroResult>('micro.ts', ['vad']));
    micro.push(await runChild<MicroResult>('micro.ts', ['vad-streams', '100']));
    micro.push(await runChild<MicroResult>('micro.ts', ['peer-resampler']));
    micro.push(await runChild<MicroResult>('micro.ts', ['peer-vad']));
    results.micro = micro;
  }

  const rows = buildRows({
    quality: o.quality,
    ...(calls === undefined ? {} : { calls }),
    ...(churn === undefined ? {} : { churn }),
    ...(rpc === undefined ? {} : { rpc }),
    micro,
  });
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
