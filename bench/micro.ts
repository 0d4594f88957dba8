// Micro-benchmarks, each run in a child process of its own (`micro.ts <what>`) so JITs, heaps and native
// libraries never mix: the project's Resampler per quality and SileroVad, and LiveKit's Node equivalents
// (@livekit/rtc-node's AudioResampler, @livekit/agents-plugin-silero's model) when they are installed.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Resampler } from '../src/audio/resampler.js';
import type { ResamplerQuality } from '../src/config.js';
import { SileroVad } from '../src/providers/vad/silero.js';
import { compareResamplers, type ResamplerEntry } from './lib/resampler-quality.js';
import { buildScript } from './script.js';

export interface ResamplerFigures {
  /** × real time per stream (CPU time, 20 ms chunks). */
  up8to16: number;
  down16to8: number;
  /** Creating one converter (ms, wall). */
  createMsP50: number;
  createMsMax: number;
  /** RSS added per live converter (bytes, 8→16 kHz, 64 converters). */
  rssPerConverter: number;
}

export interface VadFigures {
  /** CPU ms per 512-sample (32 ms) window. */
  msPerWindow: number;
  windows: number;
  /** Concurrent streams fed in lockstep (their windows share model runs). */
  streams?: number;
}

export type MicroResult =
  | { kind: 'resampler'; quality: string; figures: ResamplerFigures }
  | { kind: 'vad'; figures: VadFigures }
  | { kind: 'vad-streams'; figures: VadFigures }
  | { kind: 'peer-resampler'; available: true; figures: Record<string, { up8to16: number; down16to8: number }> }
  | { kind: 'peer-vad'; available: true; figures: VadFigures }
  | { kind: 'peer-resampler' | 'peer-vad'; available: false; error: string }
  | { kind: 'resampler-compare'; entries: ResamplerEntry[]; peerError: string | null }
  | { kind: 'cpu-loop'; figures: { mops: number; runs: number[] } };

const cpuMs = (from: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1000;
};

/** 8 kHz speech: the call script (recorded prompts and silence), as Int16Array. */
function speech8k(seconds: number): Int16Array {
  const frames = buildScript(seconds).frames;
  const out = new Int16Array(frames.length * 160);
  frames.forEach((f, i) => out.set(new Int16Array(f.buffer, f.byteOffset, 160), i * 160));
  return out;
}

/** Runs `chunks` through `step` until at least `minCpuMs` of CPU was spent; returns × real time. */
function timesRealTime(audioSecondsPerPass: number, minCpuMs: number, pass: () => void): number {
  pass(); // warm-up
  let passes = 0;
  const start = process.cpuUsage();
  while (cpuMs(start) < minCpuMs) {
    pass();
    passes++;
  }
  return (passes * audioSecondsPerPass * 1000) / cpuMs(start);
}

async function resampler(quality: ResamplerQuality): Promise<ResamplerFigures> {
  const pcm8 = speech8k(20);
  const seconds = pcm8.length / 8000;
  const up = await Resampler.create(8000, 16000, quality);
  const pcm16 = up.process(pcm8);
  const down = await Resampler.create(16000, 8000, quality);
  const up8to16 = timesRealTime(seconds, 1500, () => {
    for (let i = 0; i + 160 <= pcm8.length; i += 160) up.process(pcm8.subarray(i, i + 160));
  });
  const down16to8 = timesRealTime(seconds, 1500, () => {
    for (let i = 0; i + 320 <= pcm16.length; i += 320) down.process(pcm16.subarray(i, i + 320));
  });
  up.close();
  down.close();

  // Creation cost and resident memory per live converter, 64 of them (as 32 calls hold).
  const times: number[] = [];
  const live: Resampler[] = [];
  const warm = await Resampler.create(8000, 16000, quality);
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 64; i++) {
    const t = performance.now();
    const r = await Resampler.create(8000, 16000, quality);
    times.push(performance.now() - t);
    // A second of audio through each, so its state is touched as a live call's is.
    for (let k = 0; k < 8000; k += 160) r.process(pcm8.subarray(k, k + 160));
    live.push(r);
  }
  const rssPerConverter = (process.memoryUsage().rss - rss0) / 64;
  for (const r of live) r.close();
  warm.close();
  times.sort((a, b) => a - b);
  return { up8to16, down16to8, createMsP50: times[32] ?? Number.NaN, createMsMax: times[63] ?? Number.NaN, rssPerConverter };
}

/** 16 kHz speech for the VADs (the script through the project's own resampler). */
async function speech16k(seconds: number): Promise<Int16Array> {
  const up = await Resampler.create(8000, 16000, 'sinc_fastest');
  const out = up.process(speech8k(seconds));
  up.close();
  return out;
}

async function vad(): Promise<VadFigures> {
  const pcm = await speech16k(30);
  const v = await SileroVad.create({});
  // Warm-up, then CPU time over whole windows fed in 20 ms chunks, as a call feeds them.
  for (let i = 0; i + 320 <= 16000 * 3; i += 320) {
    v.write(pcm.subarray(i, i + 320));
    await v.drained();
  }
  const before = v.analysedWindows;
  const start = process.cpuUsage();
  for (let i = 0; i + 320 <= pcm.length; i += 320) {
    v.write(pcm.subarray(i, i + 320));
    await v.drained();
  }
  const windows = v.analysedWindows - before;
  const ms = cpuMs(start);
  await v.close();
  return { msPerWindow: ms / windows, windows };
}

/** The part of @livekit/rtc-node used here, typed locally: the bench must type-check without the peer. */
interface RtcNode {
  AudioResamplerQuality: { QUICK: number; LOW: number; MEDIUM: number; HIGH: number };
  AudioFrame: new (data: Int16Array, sampleRate: number, channels: number, samplesPerChannel: number) => object;
  AudioResampler: new (inputRate: number, outputRate: number, channels: number, quality: number) => {
    push(frame: object): Array<{ data: Int16Array; samplesPerChannel: number }>;
    close(): void;
  };
}

/** A package loaded by name at run time, so a missing optional peer is a figure-less row, not a build error. */
async function optionalImport<T>(name: string): Promise<T> {
  return (await import(name)) as T;
}

/** N calls' VADs fed 20 ms chunks in lockstep, as N concurrent calls feed the daemon's. */
async function vadStreams(n: number): Promise<VadFigures> {
  const pcm = await speech16k(12);
  const vads = await Promise.all(Array.from({ length: n }, () => SileroVad.create({})));
  // Each stream starts at another offset of the speech, so their windows are not identical.
  const at = (k: number, i: number): Int16Array => {
    const off = (i + k * 4000) % (pcm.length - 320);
    return pcm.subarray(off - (off % 320), off - (off % 320) + 320);
  };
  const step = async (i: number): Promise<void> => {
    vads.forEach((v, k) => v.write(at(k, i)));
    await Promise.all(vads.map((v) => v.drained()));
  };
  for (let i = 0; i < 16000 * 2; i += 320) await step(i);
  const before = vads.reduce((s, v) => s + v.analysedWindows, 0);
  const start = process.cpuUsage();
  for (let i = 0; i < pcm.length; i += 320) await step(i);
  const ms = cpuMs(start);
  const windows = vads.reduce((s, v) => s + v.analysedWindows, 0) - before;
  await Promise.all(vads.map((v) => v.close()));
  return { msPerWindow: ms / windows, windows, streams: n };
}

async function peerResampler(): Promise<MicroResult> {
  try {
    const rtc = await optionalImport<RtcNode>('@livekit/rtc-node');
    const pcm8 = speech8k(20);
    const seconds = pcm8.length / 8000;
    const figures: Record<string, { up8to16: number; down16to8: number }> = {};
    for (const [name, q] of [
      ['QUICK', rtc.AudioResamplerQuality.QUICK],
      ['LOW', rtc.AudioResamplerQuality.LOW],
      ['MEDIUM', rtc.AudioResamplerQuality.MEDIUM],
      ['HIGH', rtc.AudioResamplerQuality.HIGH],
    ] as const) {
      const up = new rtc.AudioResampler(8000, 16000, 1, q);
      const down = new rtc.AudioResampler(16000, 8000, 1, q);
      const frames8: object[] = [];
      for (let i = 0; i + 160 <= pcm8.length; i += 160) frames8.push(new rtc.AudioFrame(pcm8.slice(i, i + 160), 8000, 1, 160));
      const pcm16 = new Int16Array(pcm8.length * 2);
      const frames16: object[] = [];
      for (let i = 0; i + 320 <= pcm16.length; i += 320) frames16.push(new rtc.AudioFrame(pcm16.slice(i, i + 320), 16000, 1, 320));
      let produced = 0;
      for (const f of frames8) for (const out of up.push(f)) produced += out.samplesPerChannel;
      // A resampler that buffers everything (or nothing) would look infinitely fast: check its output first.
      if (Math.abs(produced - pcm8.length * 2) > 2000) throw new Error(`AudioResampler ${name} produced ${produced} of ${pcm8.length * 2} samples`);
      const u = timesRealTime(seconds, 1500, () => {
        for (const f of frames8) up.push(f);
      });
      const d = timesRealTime(seconds, 1500, () => {
        for (const f of frames16) down.push(f);
      });
      up.close();
      down.close();
      figures[name] = { up8to16: u, down16to8: d };
    }
    return { kind: 'peer-resampler', available: true, figures };
  } catch (err) {
    return { kind: 'peer-resampler', available: false, error: (err as Error).message.split('\n')[0] ?? 'unknown error' };
  }
}

/** Quality (SNR against sinc_best) and speed of our 8 ↔ 16 kHz paths and LiveKit's, in one process. */
async function resamplerCompare(): Promise<MicroResult> {
  const peers: Parameters<typeof compareResamplers>[1] = [];
  let peerError: string | null = null;
  try {
    const rtc = await optionalImport<RtcNode>('@livekit/rtc-node');
    for (const name of ['QUICK', 'LOW', 'MEDIUM'] as const) {
      peers.push([
        `LiveKit AudioResampler ${name}`,
        (from, to) => {
          const r = new rtc.AudioResampler(from, to, 1, rtc.AudioResamplerQuality[name]);
          return Promise.resolve({
            // Wrapping the chunk in an AudioFrame is part of using it (a call's audio arrives as plain PCM), and
            // the frame must own its samples: given a view, the native side reads from the start of the buffer.
            push: (chunk) => {
              const frames = r.push(new rtc.AudioFrame(chunk.slice(), from, 1, chunk.length));
              // A frame's data may be a view the resampler reuses: copy it out.
              if (frames.length === 1) return (frames[0] as { data: Int16Array }).data.slice();
              const out = new Int16Array(frames.reduce((n, f) => n + f.data.length, 0));
              let at = 0;
              for (const f of frames) {
                out.set(f.data, at);
                at += f.data.length;
              }
              return out;
            },
            close: () => r.close(),
          });
        },
      ]);
    }
  } catch (err) {
    peerError = (err as Error).message.split('\n')[0] ?? 'unknown error';
  }
  return { kind: 'resampler-compare', entries: await compareResamplers(speech8k(12), peers, 600), peerError };
}

/**
 * Calibration: a fixed CPU-bound loop (xorshift and a float accumulate, no allocation, no memory traffic) in
 * millions of iterations per CPU second, best of five — a figure of single-core speed that no library version
 * or model changes, so machines can be compared years apart.
 */
function cpuLoop(): MicroResult {
  const iterations = 40_000_000;
  const pass = (): number => {
    let x = 0x9e3779b9 | 0;
    let f = 0;
    for (let i = 0; i < iterations; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      f += (x & 0xffff) * 1.5e-5;
    }
    return f;
  };
  let sink = pass();
  const runs: number[] = [];
  for (let k = 0; k < 5; k++) {
    const start = process.cpuUsage();
    sink += pass();
    runs.push(iterations / 1e6 / (cpuMs(start) / 1000));
  }
  if (!Number.isFinite(sink)) throw new Error('cpu loop: non-finite result');
  return { kind: 'cpu-loop', figures: { mops: Math.max(...runs), runs } };
}

async function peerVad(): Promise<MicroResult> {
  try {
    // The plugin's per-window model wrapper (what its VADStream calls for every window); its package exports
    // only the whole agents VAD, which needs a LiveKit room, so the file is loaded by path.
    const require = createRequire(import.meta.url);
    const dir = dirname(require.resolve('@livekit/agents-plugin-silero'));
    const mod = (await import(pathToFileURL(join(dir, 'onnx_model.js')).href)) as {
      newInferenceSession(forceCpu: boolean): Promise<unknown>;
      OnnxModel: new (session: unknown, rate: number) => { run(x: Float32Array): Promise<number> };
    };
    const model = new mod.OnnxModel(await mod.newInferenceSession(true), 16000);
    const pcm = await speech16k(30);
    const window = new Float32Array(512);
    const run = async (from: number): Promise<void> => {
      for (let i = 0; i < 512; i++) window[i] = (pcm[from + i] as number) / 32768;
      await model.run(window);
    };
    for (let i = 0; i + 512 <= 16000 * 3; i += 512) await run(i);
    const start = process.cpuUsage();
    let windows = 0;
    for (let i = 0; i + 512 <= pcm.length; i += 512) {
      await run(i);
      windows++;
    }
    return { kind: 'peer-vad', available: true, figures: { msPerWindow: cpuMs(start) / windows, windows } };
  } catch (err) {
    return { kind: 'peer-vad', available: false, error: (err as Error).message.split('\n')[0] ?? 'unknown error' };
  }
}

async function main(): Promise<void> {
  const [what = '', arg = ''] = process.argv.slice(2);
  let result: MicroResult;
  switch (what) {
    case 'resampler':
      result = { kind: 'resampler', quality: arg, figures: await resampler(arg as ResamplerQuality) };
      break;
    case 'vad':
      result = { kind: 'vad', figures: await vad() };
      break;
    case 'vad-streams':
      result = { kind: 'vad-streams', figures: await vadStreams(Number(arg) || 100) };
      break;
    case 'peer-resampler':
      result = await peerResampler();
      break;
    case 'peer-vad':
      result = await peerVad();
      break;
    case 'resampler-compare':
      result = await resamplerCompare();
      break;
    case 'cpu-loop':
      result = cpuLoop();
      break;
    default:
      throw new Error(`micro.ts: unknown benchmark ${what}`);
  }
  process.send?.(result);
}

main().then(
  () => setTimeout(() => process.exit(0), 50),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
