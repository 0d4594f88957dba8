// Resampler quality and speed, side by side in one process: the project's half-band 8 ↔ 16 kHz path, its
// libsamplerate sinc_fastest, and LiveKit's AudioResampler (soxr) per quality. Quality is the SNR against
// libsamplerate sinc_best on the same input (speech, and a 50 Hz–3.4 kHz sweep: the telephone band), after aligning each output with
// the reference by the lag of best fit (each converter has its own delay); speed is CPU × real time, 20 ms chunks.

import { Resampler } from '../../src/audio/resampler.js';

export interface ResamplerEntry {
  name: string;
  /** × real time (CPU) per stream. */
  up8to16: number;
  down16to8: number;
  /** SNR in dB against sinc_best, 8 → 16 kHz and 16 → 8 kHz, on speech and on a sweep. */
  snrUpSpeech: number;
  snrUpSweep: number;
  snrDownSpeech: number;
  snrDownSweep: number;
}

/** A stream converter under test: 20 ms chunks in, whatever it produced out. */
type Stream = (chunk: Int16Array) => Int16Array;
type Factory = (from: number, to: number) => Promise<{ push: Stream; close(): void }>;

const cpuMs = (from: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1000;
};

/** Test sweep: exponential chirp `from`–`to` Hz over `seconds`, at −6 dBFS. */
export function sweep(rate: number, seconds: number, from: number, to: number): Int16Array {
  const n = Math.round(rate * seconds);
  const out = new Int16Array(n);
  const k = Math.log(to / from);
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const phase = ((2 * Math.PI * from * seconds) / k) * (Math.exp((t / seconds) * k) - 1);
    out[i] = Math.round(16384 * Math.sin(phase));
  }
  return out;
}

function runAll(push: Stream, input: Int16Array, chunk: number): Int16Array {
  const parts: Int16Array[] = [];
  let total = 0;
  for (let i = 0; i + chunk <= input.length; i += chunk) {
    const p = push(input.subarray(i, i + chunk));
    parts.push(p);
    total += p.length;
  }
  const out = new Int16Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** SNR (dB) of `test` shifted by `lag` against `ref` over [from, to). */
function snrAt(ref: Int16Array, test: Int16Array, lag: number, from: number, to: number): number {
  let sig = 0;
  let err = 0;
  for (let i = from; i < to; i++) {
    const r = ref[i] as number;
    const d = r - ((test[i + lag] ?? 0));
    sig += r * r;
    err += d * d;
  }
  return err === 0 ? 200 : 10 * Math.log10(sig / err);
}

/**
 * SNR (dB) of `test` against `ref` at the lag that fits best (converters differ in delay by a few ms),
 * over the middle of the signal (the first and last 300 ms are left out: converters start and stop differently).
 * The lag is found by cross-correlation on every 16th sample, then the SNR is taken at the best lag ± 2.
 */
export function snrAligned(ref: Int16Array, test: Int16Array, rate: number, maxLag = Math.round(rate * 0.05)): number {
  const from = Math.round(rate * 0.3);
  const to = Math.min(ref.length, test.length) - Math.round(rate * 0.3);
  if (to - from < rate) return Number.NaN;
  let bestLag = 0;
  let bestCorr = Number.NEGATIVE_INFINITY;
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    let corr = 0;
    for (let i = from; i < to; i += 16) corr += (ref[i] as number) * ((test[i + lag] ?? 0));
    if (corr > bestCorr) {
      bestCorr = corr;
      bestLag = lag;
    }
  }
  let best = Number.NEGATIVE_INFINITY;
  for (let lag = bestLag - 2; lag <= bestLag + 2; lag++) best = Math.max(best, snrAt(ref, test, lag, from, to - Math.abs(lag)));
  return best;
}

function speed(push: Stream, input: Int16Array, chunk: number, rate: number, minCpuMs: number): number {
  const pass = (): void => {
    for (let i = 0; i + chunk <= input.length; i += chunk) push(input.subarray(i, i + chunk));
  };
  pass();
  let passes = 0;
  const start = process.cpuUsage();
  while (cpuMs(start) < minCpuMs) {
    pass();
    passes++;
  }
  return (passes * (input.length / rate) * 1000) / cpuMs(start);
}

export async function compareResamplers(speech8: Int16Array, peers: Array<[string, Factory]>, minCpuMs = 1000): Promise<ResamplerEntry[]> {
  const sweep8 = sweep(8000, 10, 50, 3400);
  const sweep16 = sweep(16000, 10, 50, 3400);
  const ref = async (from: number, to: number, input: Int16Array): Promise<Int16Array> => {
    const r = await Resampler.create(from, to, 'sinc_best');
    const out = runAll((c) => r.process(c), input, from / 50);
    r.close();
    return out;
  };
  const bestUp = await ref(8000, 16000, speech8);
  const speech16 = bestUp; // speech at 16 kHz for the downsampling tests: band-limited by the best converter
  const refs = {
    upSpeech: bestUp,
    upSweep: await ref(8000, 16000, sweep8),
    downSpeech: await ref(16000, 8000, speech16),
    downSweep: await ref(16000, 8000, sweep16),
  };
  const own: Array<[string, Factory]> = [
    [
      'halfband (ours, sinc_fastest 8↔16)',
      async (f, t) => {
        const r = await Resampler.create(f, t, 'sinc_fastest');
        return { push: (c) => r.process(c), close: () => r.close() };
      },
    ],
    [
      'libsamplerate sinc_fastest',
      async (f, t) => {
        const r = await Resampler.create(f, t, 'sinc_fastest', { libsamplerate: true });
        return { push: (c) => r.process(c), close: () => r.close() };
      },
    ],
  ];
  const entries: ResamplerEntry[] = [];
  for (const [name, make] of [...own, ...peers]) {
    const measure = async (from: number, to: number, input: Int16Array, reference: Int16Array): Promise<number> => {
      const s = await make(from, to);
      const out = runAll(s.push, input, from / 50);
      s.close();
      return snrAligned(reference, out, to);
    };
    const up = await make(8000, 16000);
    const down = await make(16000, 8000);
    entries.push({
      name,
      up8to16: speed(up.push, speech8, 160, 8000, minCpuMs),
      down16to8: speed(down.push, speech16, 320, 16000, minCpuMs),
      snrUpSpeech: await measure(8000, 16000, speech8, refs.upSpeech),
      snrUpSweep: await measure(8000, 16000, sweep8, refs.upSweep),
      snrDownSpeech: await measure(16000, 8000, speech16, refs.downSpeech),
      snrDownSweep: await measure(16000, 8000, sweep16, refs.downSweep),
    });
    up.close();
    down.close();
  }
  return entries;
}
