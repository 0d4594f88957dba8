// Warm start (issue 9): loads once, before the daemon reports started, everything a call needs that can be
// shared — the VAD model and an inference session, the resampler modules of the usual rate pairs, the SDK modules
// loaded lazily — and runs the per-frame hot path on synthetic audio so the JIT has compiled it. Measured before
// this existed: the first call greeted in 451 ms against 40 ms for later calls, and stalled every call's output.

import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { PacedOutput, RateFollowingPacedOutput } from '../audio/paced-output.js';
import { Resampler } from '../audio/resampler.js';
import type { Config } from '../config.js';
import { SileroVad } from '../providers/vad/silero.js';

/** Rate pairs every Audiosocket call uses: 8 kHz wire ↔ 16 kHz pipeline and the TTS rates (espeak 22.05 kHz). */
const RATE_PAIRS: ReadonlyArray<readonly [number, number]> = [
  [8000, 16000],
  [16000, 8000],
  [22050, 8000],
  [22050, 16000],
];
/** One second of audio through the hot path: enough calls for V8 to optimise each function on it. */
const DRY_RUN_FRAMES = 50;

export interface WarmUpReport {
  totalMs: number;
  /** Milliseconds per step, for the startup log. */
  steps: Record<string, number>;
}

export async function warmUp(config: Config): Promise<WarmUpReport> {
  const steps: Record<string, number> = {};
  const t0 = performance.now();
  const step = async (name: string, run: () => Promise<void> | void): Promise<void> => {
    const t = performance.now();
    await run();
    steps[name] = Math.round((performance.now() - t) * 10) / 10;
  };

  await step('vad', async () => {
    await SileroVad.preload();
    // A session's first inference allocates and compiles its kernels: done here, not in a call's first turn.
    const vad = await SileroVad.create({});
    try {
      vad.write(noise(16000, 16000));
    } finally {
      vad.close();
    }
  });
  await step('resampler', async () => {
    for (const [from, to] of RATE_PAIRS) {
      const r = await Resampler.create(from, to, config.resamplerQuality);
      for (let i = 0; i < DRY_RUN_FRAMES; i++) r.process(noise(from, from / 50));
      r.flush();
      r.close();
    }
  });
  await step('sdk', () => {
    // Loaded lazily by its provider (its ESM build fails on Node 20): required here so the first call does not.
    if (config.keys.cartesia !== '' || config.defaults.ttsType === 'cartesia') {
      createRequire(import.meta.url)('@cartesia/cartesia-js');
    }
  });
  await step('paced_output', async () => {
    let written = 0;
    const writer = { headerBytes: 3, write: (): void => void written++, silence: (): Buffer => Buffer.alloc(323) };
    const out = new RateFollowingPacedOutput({ rate: 8000, writer, maxFrames: 100 });
    const plain = new PacedOutput({ rate: 16000, writer: { ...writer, silence: () => null }, maxFrames: 100 });
    for (let i = 0; i < DRY_RUN_FRAMES; i++) {
      out.push(Buffer.from(noise(8000, 160).buffer));
      plain.push(Buffer.from(noise(16000, 320).buffer));
      out.tick();
      plain.tick();
    }
    out.push(Buffer.from(noise(8000, 1000).buffer));
    out.changeRate(await Resampler.create(8000, 16000, config.resamplerQuality));
    while (out.queuedFrames > 0) out.tick();
    out.close();
    plain.close();
  });
  return { totalMs: performance.now() - t0, steps };
}

/** Quiet deterministic noise: exercises the same code paths as speech without waking the VAD. */
function noise(rate: number, samples: number): Int16Array {
  const out = new Int16Array(samples);
  let seed = rate;
  for (let i = 0; i < samples; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    out[i] = (seed % 200) - 100;
  }
  return out;
}
