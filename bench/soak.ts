// `npm run soak` (issue 16): a long run of call lifecycles against the built daemon with the provider fakes, at a
// steady concurrency, in the production mix of bench/soak-lifecycles.ts, sampling the daemon's memory and handles
// from outside (bench/soak-sampler.ts). Writes the samples and the verdicts as JSON and draws RSS and heap against
// lifecycles as a PNG.
//
// Flags: --count N (100000) --minutes M (60: no lifecycle starts after that) --concurrency C (64)
//        --warm-up W (10000) --out FILE (bench/soak-results.json) --png FILE (bench/soak.png)
//        --daemon-env K=V (repeatable: e.g. MALLOC_ARENA_MAX=2, LD_PRELOAD=…) --sample-ms MS (250)
//        --mix voice,text,… (only these kinds, for attribution; default the whole mix) --node-arg FLAG (repeatable)
//
// After the warm-up the run pauses once until no call is live (the idle baseline of descriptors, sockets and
// timers), then goes on; at the end the same idle snapshot is taken again after a settle period.

import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { waitNoCalls } from './calls.js';
import { BenchDaemon, ROOT, metric, type MetricSamples } from './lib/daemon.js';
import { startFakes, type Fakes } from './lib/fakes.js';
import { load, machineInfo } from './lib/machine.js';
import { createBenchServices } from './lib/services.js';
import { SoakBroker } from './soak-broker.js';
import { soakChart } from './soak-chart.js';
import { FAIL_MARKER, MIX, runLifecycle, type LifecycleContext, type LifecycleKind, type LifecycleStats } from './soak-lifecycles.js';
import { SoakSampler, median, resourceSample, slopePer1000, type GcPoint, type ResourceSample } from './soak-sampler.js';

interface Options {
  count: number;
  minutes: number;
  concurrency: number;
  warmUp: number;
  out: string;
  png: string;
  daemonEnv: Record<string, string>;
  sampleMs: number;
  /** The kinds to run (default all, in MIX's proportions): for attributing growth to one kind. */
  mix: LifecycleKind[];
  /** Extra node flags for the daemon (e.g. --heapsnapshot-signal=SIGUSR2). */
  nodeArgs: string[];
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    count: 100_000,
    minutes: 60,
    concurrency: 64,
    warmUp: 10_000,
    out: resolve(ROOT, 'bench/soak-results.json'),
    png: resolve(ROOT, 'bench/soak.png'),
    daemonEnv: {},
    sampleMs: 250,
    mix: [...MIX],
    nodeArgs: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i] ?? '';
    const num = (): number => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${a ?? ''} wants a non-negative number, got ${JSON.stringify(v)}`);
      return n;
    };
    switch (a) {
      case '--count': o.count = Math.floor(num()); break;
      case '--minutes': o.minutes = num(); break;
      case '--concurrency': o.concurrency = Math.max(1, Math.floor(num())); break;
      case '--warm-up': o.warmUp = Math.floor(num()); break;
      case '--out': o.out = resolve(v); break;
      case '--png': o.png = resolve(v); break;
      case '--sample-ms': o.sampleMs = Math.max(50, num()); break;
      case '--node-arg':
        o.nodeArgs.push(v);
        break;
      case '--mix': {
        const kinds = new Set(v.split(','));
        for (const k of kinds) if (!MIX.includes(k as LifecycleKind)) throw new Error(`--mix: unknown kind ${k} (${[...new Set(MIX)].join(', ')})`);
        o.mix = MIX.filter((k) => kinds.has(k));
        break;
      }
      case '--daemon-env': {
        const eq = v.indexOf('=');
        if (eq <= 0) throw new Error(`--daemon-env wants K=V, got ${JSON.stringify(v)}`);
        o.daemonEnv[v.slice(0, eq)] = v.slice(eq + 1);
        break;
      }
      default:
        throw new Error(`unknown flag ${a ?? ''} (flags: --count N --minutes M --concurrency C --warm-up W --out F --png F --daemon-env K=V --sample-ms MS --mix k1,k2 --node-arg FLAG)`);
    }
  }
  return o;
}

const log = (line: string): void => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
const MiB = 1024 * 1024;

/** The OpenAI fake's replies: a long greeting (so the caller's speech barges in), a short answer, or HTTP 500. */
function scriptFakes(fakes: Fakes): void {
  fakes.openai.setHandler((req) => {
    const messages = (req.body as { messages?: Array<{ role: string; content?: unknown }> } | undefined)?.messages ?? [];
    if (messages.some((m) => m.content === FAIL_MARKER)) return { error: { status: 500 } };
    if (!messages.some((m) => m.role === 'user')) {
      return { text: ['Hello', ',', ' thank you', ' for calling', ' the soak', ' test line', '.', ' How can', ' I help', ' you today', '?'] };
    }
    return { text: ['Sure', ',', ' one', ' moment', '.'] };
  });
  // A final transcript for every 0.75 s of audio the daemon streams to Deepgram.
  fakes.deepgram.autoTranscribe({ afterBytes: 24_000, text: 'Hello world.' });
}

/** The fakes record every request and session; forget them so the bench process stays flat too. */
function forgetFakeRecords(fakes: Fakes): void {
  fakes.deepgram.connections.length = 0;
  (fakes.openai.requests as unknown[]).length = 0;
  fakes.cartesia.messages.length = 0;
  fakes.cartesia.doneSent.length = 0;
  fakes.cartesia.upgrades.length = 0;
  fakes.cartesia.cancels.length = 0;
  fakes.cartesia.chunksSent.clear();
}

function counters(m: MetricSamples, prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of m) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}

interface KindTally {
  started: number;
  completed: number;
  errors: number;
  firstErrors: string[];
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const machine = machineInfo();
  log(`soak: ${o.count} lifecycles (≤ ${o.minutes} min), ${o.concurrency} at a time, warm-up ${o.warmUp}; load ${machine.loadAtStart.join(' ')}`);
  if (Object.keys(o.daemonEnv).length > 0) log(`daemon env: ${JSON.stringify(o.daemonEnv)}`);
  const services = await createBenchServices();
  const fakes = await startFakes();
  scriptFakes(fakes);
  const broker = await SoakBroker.connect(services.rabbitUrl);
  const ids: string[] = [];
  let daemon: BenchDaemon | undefined;
  const portNames = new Map<number, string>([
    [3306, 'mysql'],
    [6379, 'redis'],
    [5672, 'rabbitmq'],
    [fakes.deepgram.port, 'deepgram fake'],
    [fakes.openai.port, 'openai fake'],
    [Number(new URL(fakes.cartesiaTlsUrl).port), 'cartesia fake (tls)'],
  ]);
  try {
    daemon = await BenchDaemon.start({
      env: {
        DATABASE_DSN: `mysql://root@127.0.0.1:3306/${services.database}`,
        REDIS_ADDRESS: '127.0.0.1:6379',
        REDIS_DATABASE: String(services.redisDb),
        RABBITMQ_ADDRESS: services.rabbitUrl,
        UNKNOWN_CALLS: 'accept',
        ...fakes.env,
        ...o.daemonEnv,
      },
      nodeArgs: o.nodeArgs,
    });
    const d = daemon;
    log(`daemon pid ${d.pid}`);
    const ctx: LifecycleContext = { audiosocketPort: d.audiosocketPort, httpPort: d.httpPort, broker, ids };
    const stats: LifecycleStats = { botFramesVoiced: 0 };
    const tally = new Map<LifecycleKind, KindTally>();
    for (const k of new Set(MIX)) tally.set(k, { started: 0, completed: 0, errors: 0, firstErrors: [] });
    let started = 0;
    let done = 0;
    let daemonDied = false;
    void d.exited.then(() => (daemonDied = true));
    const t0 = performance.now();
    const deadline = t0 + o.minutes * 60_000;
    const sampler = new SoakSampler(d, portNames, () => done, o.sampleMs, 15_000);
    const metricsAtStart = await d.metrics();
    let baseline: ResourceSample | undefined;
    let gate: Promise<void> | undefined;
    let lastLog = performance.now();
    let timeBound = false;

    const worker = async (): Promise<void> => {
      for (;;) {
        if (started === o.warmUp && o.warmUp > 0 && baseline === undefined) {
          // The idle baseline: the first worker here waits for every lifecycle of the warm-up; the others wait for it.
          gate ??= (async () => {
            while (done < o.warmUp) await new Promise((r) => setTimeout(r, 50));
            await waitNoCalls(d, 30_000);
            await new Promise((r) => setTimeout(r, 5000));
            baseline = await resourceSample(d, portNames, done, sampler.seconds);
            log(`  warm-up done: idle RSS ${(baseline.rssBytes / MiB).toFixed(1)} MiB, ${baseline.fds} fds, ${baseline.sockets} sockets, ${baseline.resources.total ?? 0} active resources`);
          })();
          await gate;
        }
        if (started >= o.count || daemonDied) return;
        if (performance.now() > deadline) {
          timeBound = true;
          return;
        }
        const kind = o.mix[started % o.mix.length] as LifecycleKind;
        started++;
        const t = tally.get(kind) as KindTally;
        t.started++;
        try {
          await runLifecycle(kind, ctx, stats);
          t.completed++;
        } catch (err) {
          t.errors++;
          const msg = (err as Error).message;
          if (t.firstErrors.length < 5 && !t.firstErrors.includes(msg)) t.firstErrors.push(msg);
        }
        done++;
        if (done % 1000 === 0) forgetFakeRecords(fakes);
        if (performance.now() - lastLog > 30_000) {
          lastLog = performance.now();
          const last = sampler.gcPoints[sampler.gcPoints.length - 1];
          const errs = [...tally.values()].reduce((s, x) => s + x.errors, 0);
          log(
            `  ${done} / ${o.count} (${(done / ((performance.now() - t0) / 1000)).toFixed(1)}/s), errors ${errs}` +
              (last === undefined ? '' : `; after GC: RSS ${(last.rssBytes / MiB).toFixed(1)} MiB, heap ${(last.heapOldBytes / MiB).toFixed(1)} MiB`) +
              `; load ${load()[0].toFixed(1)}`,
          );
        }
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, () => worker()));
    const seconds = (performance.now() - t0) / 1000;
    if (daemonDied) throw new Error(`the daemon exited during the soak: ${d.output.slice(-3000)}`);
    log(`${done} lifecycles in ${(seconds / 60).toFixed(1)} min (${(done / seconds).toFixed(1)}/s)${timeBound ? ' — stopped by --minutes' : ''}; settling…`);
    const left = await waitNoCalls(d, 30_000);
    await new Promise((r) => setTimeout(r, 10_000));
    const after = await resourceSample(d, portNames, done, sampler.seconds);
    await sampler.stop();
    const metricsAtEnd = await d.metrics();

    // Verdicts over the measured part (after the warm-up).
    const measured = sampler.gcPoints.filter((p) => p.lifecycles >= o.warmUp);
    const slope = (y: (p: GcPoint) => number): number => slopePer1000(measured.map((p) => ({ x: p.lifecycles, y: y(p) })));
    const span = done - o.warmUp;
    const head = measured.filter((p) => p.lifecycles < o.warmUp + span * 0.1);
    const tail = measured.filter((p) => p.lifecycles >= o.warmUp + span * 0.9);
    const heapHead = median(head.map((p) => p.heapOldBytes));
    const heapTail = median(tail.map((p) => p.heapOldBytes));
    const rssHead = median(head.map((p) => p.rssBytes));
    const rssTail = median(tail.map((p) => p.rssBytes));
    // The same from the periodic samples (every 15 s, whatever the GC did): RSS, and RSS minus V8's committed heap.
    const measuredSamples = sampler.samples.filter((p) => p.lifecycles >= o.warmUp);
    const sampleSlope = (y: (p: ResourceSample) => number): number =>
      slopePer1000(measuredSamples.map((p) => ({ x: p.lifecycles, y: y(p) }))) / MiB;
    const errors = [...tally.values()].reduce((s, x) => s + x.errors, 0);
    const base = baseline ?? after;
    const delta = (k: keyof ResourceSample): number => (after[k] as number) - (base[k] as number);
    const resDelta: Record<string, number> = {};
    for (const k of new Set([...Object.keys(after.resources), ...Object.keys(base.resources)])) {
      resDelta[k] = (after.resources[k] ?? 0) - (base.resources[k] ?? 0);
    }
    const diff = (prefix: string): Record<string, number> => {
      const a = counters(metricsAtEnd, prefix);
      const b = counters(metricsAtStart, prefix);
      const out: Record<string, number> = {};
      for (const k of Object.keys(a)) if ((a[k] ?? 0) - (b[k] ?? 0) !== 0) out[k] = (a[k] ?? 0) - (b[k] ?? 0);
      return out;
    };
    const result = {
      machine: { ...machine, loadAtEnd: load() },
      options: { ...o, out: undefined, png: undefined },
      lifecycles: done,
      seconds,
      perSecond: done / seconds,
      stoppedByTime: timeBound,
      mix: Object.fromEntries(tally),
      errors,
      botFramesVoiced: stats.botFramesVoiced,
      aiManagerRequests: broker.aiManagerRequests,
      daemon: {
        callsTerminated: diff('pipecat_manager_calls_terminated_total'),
        callsCreated: diff('pipecat_manager_calls_total'),
        interruptions: diff('pipecat_manager_interruptions_total'),
        providerErrors: diff('pipecat_manager_provider_errors_total'),
        protocolErrors: diff('pipecat_manager_audiosocket_protocol_errors_total'),
        mediaRefused: diff('pipecat_manager_media_refused_total'),
        droppedFrames: diff('pipecat_manager_dropped_frames_total'),
        liveCallsAfter: left,
        majorGcs: metric(metricsAtEnd, 'nodejs_gc_duration_seconds_count{kind="major"}'),
      },
      verdicts: {
        rssSlopeMiBPer1000: slope((p) => p.rssBytes) / MiB,
        rssAnonSlopeMiBPer1000: slope((p) => p.rssAnonBytes) / MiB,
        heapSlopeMiBPer1000: slope((p) => p.heapOldBytes) / MiB,
        externalSlopeMiBPer1000: slope((p) => p.externalBytes) / MiB,
        v8CommittedSlopeMiBPer1000: slope((p) => p.heapTotalBytes) / MiB,
        nativeSlopeMiBPer1000: slope((p) => p.rssBytes - p.heapTotalBytes) / MiB,
        sampled: {
          rssSlopeMiBPer1000: sampleSlope((p) => p.rssBytes),
          nativeSlopeMiBPer1000: sampleSlope((p) => p.rssBytes - p.heapTotalBytes),
          brkHeapSlopeMiBPer1000: sampleSlope((p) => p.smaps.brkHeapBytes),
          threadArenaSlopeMiBPer1000: sampleSlope((p) => p.smaps.threadArenaBytes),
          arrayBuffersSlopeMiBPer1000: sampleSlope((p) => p.memory.array_buffers ?? 0),
        },
        heapFirstTenthMiB: heapHead / MiB,
        heapLastTenthMiB: heapTail / MiB,
        heapGrowthMiB: (heapTail - heapHead) / MiB,
        rssFirstTenthMiB: rssHead / MiB,
        rssLastTenthMiB: rssTail / MiB,
        fdsDelta: delta('fds'),
        socketsDelta: delta('sockets'),
        threadsDelta: delta('threads'),
        activeResourcesDelta: resDelta,
        targets: {
          rssSlopeBelow0_1MiB: slope((p) => p.rssBytes) / MiB < 0.1,
          heapFlatWithin5MB: Math.abs(heapTail - heapHead) < 5e6,
          handlesBackToBaseline: delta('fds') <= 0 && delta('sockets') <= 0 && (resDelta.total ?? 0) <= 0 && left === 0,
          noErrorsButInjected: errors === 0,
        },
      },
      baseline: base,
      after,
      gcPoints: sampler.gcPoints,
      samples: sampler.samples,
      scrapeFailures: sampler.scrapeFailures,
      daemonOutputTail: d.output.slice(-2000),
    };
    await writeFile(o.out, `${JSON.stringify(result, null, 1)}\n`);
    await writeFile(o.png, soakChart(result));
    const v = result.verdicts;
    log(`RSS slope after warm-up ${v.rssSlopeMiBPer1000.toFixed(3)} MiB/1000 (anon ${v.rssAnonSlopeMiBPer1000.toFixed(3)}); RSS ${v.rssFirstTenthMiB.toFixed(1)} → ${v.rssLastTenthMiB.toFixed(1)} MiB`);
    log(`heap (old gen) ${v.heapFirstTenthMiB.toFixed(1)} → ${v.heapLastTenthMiB.toFixed(1)} MiB (slope ${v.heapSlopeMiBPer1000.toFixed(3)}); external slope ${v.externalSlopeMiBPer1000.toFixed(3)}`);
    log(`V8 committed slope ${v.v8CommittedSlopeMiBPer1000.toFixed(3)}, native (RSS − V8 committed) slope ${v.nativeSlopeMiBPer1000.toFixed(3)} MiB/1000; every 15 s: ${JSON.stringify(v.sampled)}`);
    log(`fds ${v.fdsDelta >= 0 ? '+' : ''}${v.fdsDelta}, sockets ${v.socketsDelta}, threads ${v.threadsDelta}, resources ${JSON.stringify(v.activeResourcesDelta)}, live calls ${left}`);
    log(`errors ${errors} (${JSON.stringify([...tally].filter(([, t]) => t.errors > 0).map(([k, t]) => [k, t.errors, t.firstErrors]))})`);
    log(`terminations ${JSON.stringify(result.daemon.callsTerminated)}; interruptions ${JSON.stringify(result.daemon.interruptions)}`);
    log(`targets ${JSON.stringify(v.targets)} → ${o.out}, ${o.png}`);
  } finally {
    if (daemon !== undefined) {
      const code = await daemon.stop();
      if (code !== 0) log(`daemon exited with ${String(code)}: ${daemon.output.slice(-2000)}`);
    }
    await broker.close();
    await fakes.close();
    const problems = await services.cleanup(ids);
    for (const p of problems) log(`cleanup: ${p}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
