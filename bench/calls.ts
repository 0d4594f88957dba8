// The calls scenario (SPEC §14): N concurrent Asterisk-like calls against the real daemon, each streaming the
// recorded prompts of script.ts with silence between, the daemon on Deepgram/OpenAI/Cartesia fakes. The callers
// live in caller-process.ts; this side ramps the calls up one at a time (which is also how each call is paired
// with its Deepgram session), sends each call's transcript when its prompt ends, and samples the daemon.

import { randomUUID } from 'node:crypto';
import { setPriority } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ChildProcess } from 'node:child_process';
import { RESAMPLER_HOLD_BACK_MS } from '../src/audio/resampler.js';
import type { ResamplerQuality } from '../src/config.js';
import type { FakeDeepgramConnection } from '../test/fakes/deepgram-server.js';
import type { CallRecord, CallerResult, FromCaller, ToCaller } from './caller-process.js';
import { forkBench } from './lib/child.js';
import { histogramQuantile, metric, type BenchDaemon, type MetricSamples, type ProcSample } from './lib/daemon.js';
import type { Fakes } from './lib/fakes.js';
import { load, machineSample } from './lib/machine.js';
import { summarize, type Summary } from './lib/stats.js';
import { FRAME_SAMPLES, buildScript, pairTurns, shiftTurns, simulateVad, type CallScript } from './script.js';

export interface CallsOptions {
  calls: number;
  seconds: number;
  quality: ResamplerQuality;
  log: (line: string) => void;
  /** Three short calls first to warm the daemon (default true; a capacity search warms once). */
  warmUp?: boolean;
}

export interface CallsResult {
  calls: number;
  measuredSeconds: number;
  rampSeconds: number;
  /** Per-call ramp step: connect → the daemon's pipeline has dialled Deepgram (ms). */
  callSetupMs: Summary;
  lateness: CallerResult['lateness'];
  latenessFirstFrameAnchor: CallerResult['latenessFirstFrameAnchor'];
  framesOver20ms: number;
  addedLatencyMs: Summary;
  addedLatencySteadyMs: Summary;
  /** The daemon's own voice_to_voice_seconds histogram over the run (ms, interpolated inside buckets). */
  daemonVoiceToVoiceMs: { p50: number; p99: number; count: number };
  /** Stages inside the daemon over the run (ms, from its histograms): LLM first token, TTS first byte. */
  daemonStagesMs: { sttFinalP50: number; llmTtftP50: number; llmTtftP99: number; ttsTtfbP50: number; ttsTtfbP99: number };
  /** The daemon's output_frame_lateness_seconds (its timer's wake-up lateness per tick, ms). */
  daemonTickLatenessMs: { p50: number; p99: number };
  turns: {
    measured: number;
    /** A reply that began while the caller was still speaking by the VAD (should be 0). */
    premature: number;
    /** No reply within 2 s of the VAD stop. */
    noReply: number;
    /** Prompts the VAD split or missed: left out of the figure. */
    unpaired: number;
    /** Calls whose daemon-side stream start could not be told from the Deepgram byte count. */
    unaligned: number;
    /** Distinct stream starts simulated offline. */
    simulations: number;
  };
  cpu: { cores: number; secondsPerCallSecond: number };
  rss: { idleBytes: number; loadedBytes: number; perCallBytes: number };
  heapUsedBytes: { idle: number; loaded: number };
  /**
   * Frames lost: dropped by the daemon, missing at the client, and slots the pacing thread filled with silence
   * mid-reply because the main thread had not staged the next bot frame (on time at the client, but a gap heard).
   */
  dropped: { daemonDroppedFrames: number; clientMissingFrames: number; underruns: number; framesSent: number; framesReceived: number };
  closedEarly: number;
  callerSendClockLatenessMs: Summary;
  callersAtRaisedPriority: boolean;
  /** CPU the load generator used meanwhile (cores): the callers' process and the bench process with the fakes. */
  benchCores: { callers: number; fakes: number };
  /**
   * Event-loop delay of the bench process that serves the provider fakes (ms): a reply the fakes send late is
   * added latency the daemon did not cause. Reported so a run can be judged.
   */
  fakesLoopDelayMs: { p99: number; max: number };
  /**
   * The shared machine over the window: the share of time some runnable task waited for a CPU (Linux PSI), and
   * the load average at the end. High values mean other work competed with the daemon and the instrument.
   */
  machine: { cpuPressurePercent: number; load1: number; stealCores: number };
  /** Times per second the daemon's main thread was preempted while runnable. */
  daemonPreemptionsPerSecond: number;
  failedToStart: number;
  /** Calls the daemon closed before their pipeline started: refused by admission control. */
  refused: number;
  /** The slowest turns (diagnostics): call, turn, when, and the reply starts seen within ±3 s of the VAD stop. */
  worstTurns: Array<{ call: number; turn: number; stopAt: number; latencyMs: number | null; replyStartsAround: number[] }>;
  /** Every measured turn: [VAD stop, ms after the ramp ended; added latency, ms]. */
  turnTimeline: Array<[number, number]>;
}

class Caller {
  readonly child: ChildProcess;
  private readonly waiters = new Map<string, (m: FromCaller) => void>();
  result: Promise<CallerResult>;
  onPromptEnd: (index: number, turn: number) => void = () => undefined;
  /** Calls the daemon closed on its own (refused, or ended early). */
  readonly closed = new Set<number>();

  /** Whether the callers' process runs at a raised priority (see the constructor). */
  readonly raisedPriority: boolean;

  constructor() {
    this.child = forkBench('caller-process.ts');
    // The callers are the measuring instrument: at a raised priority (nice −10, needs root) the OS runs them as
    // soon as a frame arrives, so a receive timestamp is not late because the daemon or the fakes held the CPU
    // (measured: lateness p99 4.4–5.2 ms with it, 6.1–8.4 ms without, same build). They use ≈ 0.1 core. The
    // daemon and the fakes run at normal priority (raising the fakes too made the daemon's figures worse).
    let raised = false;
    try {
      if (this.child.pid !== undefined) {
        setPriority(this.child.pid, -10);
        raised = true;
      }
    } catch {
      raised = false;
    }
    this.raisedPriority = raised;
    this.result = new Promise((resolve, reject) => {
      this.child.on('message', (m: FromCaller) => {
        if (m.type === 'result') resolve(m.result);
        else if (m.type === 'promptEnd') this.onPromptEnd(m.index, m.turn);
        else if (m.type === 'closed') this.closed.add(m.index);
        else {
          const key = m.type === 'ready' ? 'ready' : `call:${m.index}`;
          this.waiters.get(key)?.(m);
          this.waiters.delete(key);
        }
      });
      this.child.once('exit', (code) => reject(new Error(`caller process exited with ${String(code)}`)));
    });
    this.result.catch(() => undefined);
  }

  send(msg: ToCaller): void {
    this.child.send(msg);
  }

  wait(key: string, timeoutMs = 10_000): Promise<FromCaller> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`caller: no ${key} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.set(key, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  }
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 2));
  }
  return true;
}

/** Waits until the daemon has no call left (hangups are processed asynchronously). */
export async function waitNoCalls(daemon: BenchDaemon, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const active = metric(await daemon.metrics(), 'pipecat_manager_active_calls');
    if (active === 0 || Date.now() > deadline) return active;
    await new Promise((r) => setTimeout(r, 200));
  }
}

function sendTranscript(fakes: Fakes, conn: FakeDeepgramConnection | undefined, text: string): void {
  if (conn === undefined || conn.closed) return;
  // An interim hypothesis first, then the final, as Deepgram's interim_results do.
  fakes.deepgram.sendResults(text.split(' ')[0] ?? text, { isFinal: false }, conn);
  fakes.deepgram.sendResults(text, { isFinal: true, speechFinal: true }, conn);
}

/**
 * Starts calls one by one, each paired with the next Deepgram session the daemon opens; `conns` fills as the ramp
 * goes (the first calls already speak while later ones connect).
 */
async function ramp(
  caller: Caller,
  fakes: Fakes,
  n: number,
  uuids: string[],
  conns: Array<FakeDeepgramConnection | undefined>,
  log: (s: string) => void,
): Promise<{ setupMs: number[]; failed: number; refused: number }> {
  const setupMs: number[] = [];
  let failed = 0;
  let refused = 0;
  const base = fakes.deepgram.connections.length;
  for (let i = 0; i < n; i++) {
    const uuid = randomUUID();
    uuids.push(uuid);
    const t0 = performance.now();
    caller.send({ type: 'start', index: i, uuid });
    const m = await caller.wait(`call:${i}`);
    if (m.type === 'failed') {
      failed++;
      conns.push(undefined);
      log(`call ${i} failed to connect: ${m.error}`);
      continue;
    }
    const expected = base + (conns.length - countUndefined(conns)) + 1;
    const ok = await until(() => fakes.deepgram.connections.length >= expected || caller.closed.has(i), 10_000);
    if (caller.closed.has(i) && fakes.deepgram.connections.length < expected) {
      // Closed by the daemon before its pipeline started: refused (admission control), not a failure to measure.
      refused++;
      conns.push(undefined);
      continue;
    }
    if (!ok) {
      failed++;
      conns.push(undefined);
      log(`call ${i}: the daemon opened no Deepgram session within 10 s`);
      continue;
    }
    conns.push(fakes.deepgram.connections[expected - 1]);
    setupMs.push(performance.now() - t0);
  }
  return { setupMs, failed, refused };
}

function countUndefined(a: unknown[]): number {
  let n = 0;
  for (const x of a) if (x === undefined) n++;
  return n;
}

async function sampleDaemon(daemon: BenchDaemon): Promise<{ proc: ProcSample; metrics: MetricSamples }> {
  const [proc, metrics] = await Promise.all([daemon.proc(), daemon.metrics()]);
  return { proc, metrics };
}

/** Three short calls to load the providers' SDKs and warm the JIT before the idle figures are taken. */
async function warmUp(daemon: BenchDaemon, fakes: Fakes, script: CallScript, uuids: string[]): Promise<void> {
  const caller = new Caller();
  caller.send({
    type: 'init',
    port: daemon.audiosocketPort,
    scriptSeconds: 8,
    promptEnds: script.turns.map((t, k) => ({ frame: t.lastFrame, turn: k })),
  });
  await caller.wait('ready');
  const conns: Array<FakeDeepgramConnection | undefined> = [];
  caller.onPromptEnd = (index, turn) => {
    const t = script.turns[turn];
    if (t !== undefined) sendTranscript(fakes, conns[index], t.text);
  };
  await ramp(caller, fakes, 3, uuids, conns, () => undefined);
  await new Promise((r) => setTimeout(r, 6000));
  caller.send({ type: 'stop' });
  await caller.result;
}

/**
 * Added latency per turn: from the send time of the frame carrying the last sample of the VAD window that
 * completes stop_secs, to the arrival of the first bot frame after it. Where that window lies depends on where
 * the daemon's VAD stream began: the first frames of a call arrive before its pipeline is up and are not
 * analysed. That start is recovered exactly from the bytes the call's Deepgram session received (every analysed
 * frame is streamed to the STT too: 16 kHz samples = 2 × 160 × frames − the resampler's hold-back), and the
 * script is simulated offline from there, once per distinct start.
 */
async function addedLatency(
  script: CallScript,
  res: CallerResult,
  conns: Array<FakeDeepgramConnection | undefined>,
  quality: ResamplerQuality,
  /** The daemon's 8 → 16 kHz path: the half-band filter, or libsamplerate (older builds). */
  halfband: boolean,
  /** Whether the daemon's VAD leaves the model out on long quiet stretches (older builds: never). */
  skipsQuiet: boolean,
): Promise<{
  latencies: number[];
  latenciesSteady: number[];
  premature: number;
  noReply: number;
  unpaired: number;
  unaligned: number;
  simulations: number;
  worst: Array<{ call: number; turn: number; stopAt: number; latencyMs: number | null; replyStartsAround: number[] }>;
  timeline: Array<[number, number]>;
}> {
  const holdBack16 = Math.round((RESAMPLER_HOLD_BACK_MS[quality] * 16_000) / 1000);
  const byStart = new Map<number, CallRecord[]>();
  let unaligned = 0;
  for (const c of res.calls) {
    const conn = conns[c.index];
    const sent = c.sentAt.length;
    const analysed = conn === undefined ? Number.NaN : Math.round((conn.audioBytes / 2 + holdBack16) / (2 * FRAME_SAMPLES));
    const start = sent - analysed;
    if (!Number.isInteger(start) || start < 0 || start > 250) {
      unaligned++;
      continue;
    }
    const list = byStart.get(start) ?? [];
    list.push(c);
    byStart.set(start, list);
  }
  const out = {
    latencies: [] as number[],
    latenciesSteady: [] as number[],
    premature: 0,
    noReply: 0,
    unpaired: 0,
    unaligned,
    simulations: byStart.size,
    worst: [] as Array<{ call: number; turn: number; stopAt: number; latencyMs: number | null; replyStartsAround: number[] }>,
    timeline: [] as Array<[number, number]>,
  };
  const note = (c: CallRecord, turn: number, stopAt: number, latencyMs: number | null): void => {
    const around = [...c.replyStarts].filter((r) => r > stopAt - 3000 && r < stopAt + 3000).map((r) => Math.round(r - stopAt));
    out.worst.push({ call: c.index, turn, stopAt: Math.round(stopAt - res.rampDoneAt), latencyMs, replyStartsAround: around });
    out.worst.sort((x, y) => (y.latencyMs ?? 1e9) - (x.latencyMs ?? 1e9));
    out.worst.length = Math.min(out.worst.length, 15);
  };
  const lastSent = Math.max(0, ...res.calls.map((c) => c.sentAt.length));
  for (const [start, group] of byStart) {
    const vad = shiftTurns(await simulateVad(script.frames.slice(start, lastSent), quality, !halfband, skipsQuiet), start);
    for (const pair of pairTurns(script, vad)) {
      for (const c of group) {
        const startAt = pair.vad === null ? undefined : c.sentAt[pair.vad.startFrame];
        const stopAt = pair.vad === null ? undefined : c.sentAt[pair.vad.stopFrame];
        // Turns the call never finished before the bench hung up have no reply to wait for.
        if (c.sentAt[pair.turn.lastFrame] === undefined || (stopAt ?? Infinity) > res.stoppedAt - 2000) continue;
        if (startAt === undefined || stopAt === undefined) {
          out.unpaired++;
          continue;
        }
        if (c.replyStarts.some((r) => r >= startAt && r < stopAt)) {
          out.premature++;
          continue;
        }
        const reply = c.replyStarts.find((r) => r >= stopAt);
        if (reply === undefined || reply - stopAt > 2000) {
          out.noReply++;
          note(c, script.turns.indexOf(pair.turn), stopAt, null);
          continue;
        }
        if (reply - stopAt > 50) note(c, script.turns.indexOf(pair.turn), stopAt, reply - stopAt);
        out.latencies.push(reply - stopAt);
        out.timeline.push([Math.round(stopAt - res.rampDoneAt), Math.round((reply - stopAt) * 10) / 10]);
        if (startAt >= res.rampDoneAt) out.latenciesSteady.push(reply - stopAt);
      }
    }
  }
  return out;
}

export async function runCalls(daemon: BenchDaemon, fakes: Fakes, o: CallsOptions): Promise<{ result: CallsResult; uuids: string[] }> {
  const uuids: string[] = [];
  // Long enough for the ramp (≈ 50 ms a call, measured) plus the measurement and a margin.
  const scriptSeconds = Math.ceil(o.calls * 0.15 + o.seconds + 15);
  const script = buildScript(scriptSeconds);

  if (o.warmUp !== false) {
    o.log('  warm-up call, then the idle baseline…');
    await warmUp(daemon, fakes, script, uuids);
  }
  await waitNoCalls(daemon);
  await new Promise((r) => setTimeout(r, 3000));
  const idle = await sampleDaemon(daemon);

  const caller = new Caller();
  caller.send({
    type: 'init',
    port: daemon.audiosocketPort,
    scriptSeconds,
    promptEnds: script.turns.map((t, k) => ({ frame: t.lastFrame, turn: k })),
  });
  await caller.wait('ready');
  const conns: Array<FakeDeepgramConnection | undefined> = [];
  caller.onPromptEnd = (index, turn) => {
    const t = script.turns[turn];
    if (t !== undefined) sendTranscript(fakes, conns[index], t.text);
  };
  // The fakes record every request and message; over a run that is a heap whose collections would pause the
  // fakes' replies. Only the Deepgram sessions are needed (the pairing), so the rest is dropped as it comes.
  const trim = setInterval(() => {
    (fakes.openai.requests as unknown[]).length = 0;
    fakes.cartesia.messages.length = 0;
    fakes.cartesia.doneSent.length = 0;
    fakes.cartesia.upgrades.length = 0;
    fakes.cartesia.cancels.length = 0;
    fakes.cartesia.chunksSent.clear();
  }, 1000);
  const before = await sampleDaemon(daemon);
  o.log(`  ramping up ${o.calls} calls…`);
  const rampStart = performance.now();
  const r = await ramp(caller, fakes, o.calls, uuids, conns, o.log);
  const rampSeconds = (performance.now() - rampStart) / 1000;
  caller.send({ type: 'rampDone' });
  o.log(`  ${o.calls - r.failed - r.refused} calls up${r.refused > 0 ? ` (${r.refused} refused)` : ''} in ${rampSeconds.toFixed(1)} s; measuring for ${o.seconds} s…`);

  // Steady state: CPU over the window, RSS as the mean of one sample a second.
  await new Promise((res) => setTimeout(res, 1000));
  const a = await sampleDaemon(daemon);
  const benchCpuA = process.cpuUsage();
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const machineA = machineSample();
  const rssSamples: number[] = [];
  const heapSamples: number[] = [];
  const end = performance.now() + o.seconds * 1000;
  while (performance.now() < end) {
    await new Promise((res) => setTimeout(res, Math.min(1000, Math.max(0, end - performance.now()))));
    const s = await sampleDaemon(daemon);
    rssSamples.push(s.proc.rssBytes);
    heapSamples.push(metric(s.metrics, 'nodejs_heap_size_used_bytes'));
  }
  const b = await sampleDaemon(daemon);
  const benchCpu = process.cpuUsage(benchCpuA);
  loopDelay.disable();
  clearInterval(trim);
  const machineB = machineSample();
  caller.send({ type: 'stop' });
  const res = await caller.result;
  const left = await waitNoCalls(daemon);
  const after = await sampleDaemon(daemon);
  if (left > 0) o.log(`  WARNING: ${left} calls still active 20 s after the hangups`);

  const live = o.calls - r.failed - r.refused;
  const windowS = (b.proc.at - a.proc.at) / 1000;
  const cores = (b.proc.cpuSeconds - a.proc.cpuSeconds) / windowS;
  const callerCores = res.cpuSecondsSteady / ((res.stoppedAt - res.rampDoneAt) / 1000);
  const fakesCores = (benchCpu.user + benchCpu.system) / 1e6 / windowS;
  const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  const loadedRss = mean(rssSamples);
  const ms = (x: number): number => x * 1000;
  o.log('  simulating the daemon\'s VAD offline for each stream start…');
  const turns = await addedLatency(script, res, conns, o.quality, daemon.halfband, daemon.skipsQuiet);
  const result: CallsResult = {
    calls: live,
    measuredSeconds: windowS,
    rampSeconds,
    callSetupMs: summarize(r.setupMs),
    lateness: res.lateness,
    latenessFirstFrameAnchor: res.latenessFirstFrameAnchor,
    framesOver20ms: res.framesOver20ms,
    addedLatencyMs: summarize(turns.latencies),
    addedLatencySteadyMs: summarize(turns.latenciesSteady),
    daemonVoiceToVoiceMs: {
      p50: ms(histogramQuantile(after.metrics, 'pipecat_manager_voice_to_voice_seconds', 0.5, before.metrics)),
      p99: ms(histogramQuantile(after.metrics, 'pipecat_manager_voice_to_voice_seconds', 0.99, before.metrics)),
      count:
        metric(after.metrics, 'pipecat_manager_voice_to_voice_seconds_count') -
        metric(before.metrics, 'pipecat_manager_voice_to_voice_seconds_count'),
    },
    daemonStagesMs: {
      llmTtftP50: ms(histogramQuantile(after.metrics, 'pipecat_manager_llm_ttft_seconds', 0.5, before.metrics)),
      llmTtftP99: ms(histogramQuantile(after.metrics, 'pipecat_manager_llm_ttft_seconds', 0.99, before.metrics)),
      ttsTtfbP50: ms(histogramQuantile(after.metrics, 'pipecat_manager_tts_ttfb_seconds', 0.5, before.metrics)),
      ttsTtfbP99: ms(histogramQuantile(after.metrics, 'pipecat_manager_tts_ttfb_seconds', 0.99, before.metrics)),
      sttFinalP50: ms(histogramQuantile(after.metrics, 'pipecat_manager_stt_final_seconds', 0.5, before.metrics)),
    },
    daemonTickLatenessMs: {
      p50: ms(histogramQuantile(b.metrics, 'pipecat_manager_output_frame_lateness_seconds', 0.5, a.metrics)),
      p99: ms(histogramQuantile(b.metrics, 'pipecat_manager_output_frame_lateness_seconds', 0.99, a.metrics)),
    },
    turns: {
      measured: turns.latencies.length,
      premature: turns.premature,
      noReply: turns.noReply,
      unpaired: turns.unpaired,
      unaligned: turns.unaligned,
      simulations: turns.simulations,
    },
    cpu: { cores, secondsPerCallSecond: cores / Math.max(1, live) },
    rss: { idleBytes: idle.proc.rssBytes, loadedBytes: loadedRss, perCallBytes: (loadedRss - idle.proc.rssBytes) / Math.max(1, live) },
    heapUsedBytes: { idle: metric(idle.metrics, 'nodejs_heap_size_used_bytes'), loaded: mean(heapSamples) },
    dropped: {
      daemonDroppedFrames: metric(after.metrics, 'pipecat_manager_dropped_frames_total') - metric(before.metrics, 'pipecat_manager_dropped_frames_total'),
      clientMissingFrames: res.framesMissing,
      underruns: metric(after.metrics, 'pipecat_manager_output_underruns_total') - metric(before.metrics, 'pipecat_manager_output_underruns_total'),
      framesSent: res.framesSent,
      framesReceived: res.framesReceived,
    },
    closedEarly: res.calls.filter((c) => c.closedEarly).length,
    callerSendClockLatenessMs: res.sendClockLateness,
    callersAtRaisedPriority: caller.raisedPriority,
    benchCores: { callers: callerCores, fakes: fakesCores },
    fakesLoopDelayMs: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
    machine: {
      cpuPressurePercent: ((machineB.cpuPressureUs - machineA.cpuPressureUs) / 1e6 / ((machineB.at - machineA.at) / 1000)) * 100,
      load1: load()[0],
      stealCores: (machineB.stealSeconds - machineA.stealSeconds) / ((machineB.at - machineA.at) / 1000),
    },
    daemonPreemptionsPerSecond: (b.proc.preemptions - a.proc.preemptions) / windowS,
    failedToStart: r.failed,
    refused: r.refused,
    worstTurns: turns.worst,
    turnTimeline: turns.timeline.sort((x, y) => x[0] - y[0]),
  };
  return { result, uuids };
}
