// Resampler: one stateful converter fed 20 ms chunks is indistinguishable from resampling in one piece, and the
// output length stays exact over a long call (SPEC §2.3).

import { describe, expect, it } from 'vitest';
import { converterPoolStats } from '../../src/audio/converter-pool.js';
import { RESAMPLER_HOLD_BACK_MS, Resampler, usesHalfband } from '../../src/audio/resampler.js';
import type { ResamplerQuality } from '../../src/config.js';

const QUALITIES: readonly ResamplerQuality[] = ['sinc_fastest', 'sinc_medium', 'sinc_best'];

function sine(rate: number, samples: number, hz = 1000, amplitude = 16000): Int16Array {
  const out = new Int16Array(samples);
  for (let i = 0; i < samples; i++) out[i] = Math.round(Math.sin((2 * Math.PI * hz * i) / rate) * amplitude);
  return out;
}

function concat(parts: readonly Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** The whole signal in one `process()` call, then the tail. */
async function inOnePiece(signal: Int16Array, from: number, to: number, quality: ResamplerQuality): Promise<Int16Array> {
  const r = await Resampler.create(from, to, quality);
  try {
    return concat([r.process(signal), r.flush()]);
  } finally {
    r.close();
  }
}

function maxAbsDiff(a: Int16Array, b: Int16Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

function maxStep(x: Int16Array): number {
  let max = 0;
  for (let i = 1; i < x.length; i++) max = Math.max(max, Math.abs((x[i] as number) - (x[i - 1] as number)));
  return max;
}

describe('Resampler', () => {
  it.each(QUALITIES)('%s: 1 kHz sine 8→16→8 kHz in 20 ms chunks equals the one-piece result', async (quality) => {
    const input = sine(8000, 8000 * 3);
    const up = await Resampler.create(8000, 16000, quality);
    const down = await Resampler.create(16000, 8000, quality);
    const mid: Int16Array[] = [];
    const out: Int16Array[] = [];
    for (let i = 0; i < input.length; i += 160) {
      const u = up.process(input.subarray(i, i + 160));
      mid.push(u);
      out.push(down.process(u));
    }
    const tail = up.flush();
    mid.push(tail);
    out.push(down.process(tail), down.flush());
    up.close();
    down.close();

    const chunkedMid = concat(mid);
    const chunked = concat(out);
    const wholeMid = await inOnePiece(input, 8000, 16000, quality);
    const whole = await inOnePiece(wholeMid, 16000, 8000, quality);
    expect(chunkedMid.length).toBe(input.length * 2);
    expect(chunked.length).toBe(input.length);
    expect(maxAbsDiff(chunkedMid, wholeMid)).toBeLessThanOrEqual(1);
    expect(maxAbsDiff(chunked, whole)).toBeLessThanOrEqual(1);

    // No click at any 20 ms boundary: no step larger than the sine's own steepest step (2A·sin(πf/fs)) + rounding.
    // The first and last 20 ms are left out: the abrupt start/end of the test sine rings (Gibbs) in every filter.
    expect(maxStep(chunkedMid.subarray(320, -320))).toBeLessThanOrEqual(2 * 16000 * Math.sin(Math.PI / 16) + 2);
    expect(maxStep(chunked.subarray(160, -160))).toBeLessThanOrEqual(2 * 16000 * Math.sin(Math.PI / 8) + 2);
    // And the round trip gives the sine back (band-limited well inside both Nyquist limits), away from the edges.
    expect(maxAbsDiff(chunked.subarray(400, -400), input.subarray(400, -400))).toBeLessThanOrEqual(2);
  });

  it('chunks of odd, varying sizes give the same samples as one piece', async () => {
    const input = sine(16000, 16000 * 2, 440, 12000);
    const r = await Resampler.create(16000, 8000, 'sinc_fastest');
    const parts: Int16Array[] = [];
    let seed = 7;
    for (let i = 0; i < input.length; ) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      const n = 1 + (seed % 700);
      parts.push(r.process(input.subarray(i, i + n)));
      i += n;
    }
    parts.push(r.flush());
    r.close();
    const chunked = concat(parts);
    expect(chunked.length).toBe(input.length / 2);
    expect(maxAbsDiff(chunked, await inOnePiece(input, 16000, 8000, 'sinc_fastest'))).toBeLessThanOrEqual(1);
  });

  it.each([
    [8000, 16000],
    [16000, 8000],
  ] as const)('a 10-minute call %i→%i Hz in 20 ms chunks keeps its length exactly', async (from, to) => {
    const r = await Resampler.create(from, to, 'sinc_fastest');
    const chunk = sine(from, from / 50, 300, 8000);
    const holdBack = Math.round((RESAMPLER_HOLD_BACK_MS.sinc_fastest * to) / 1000);
    let samplesIn = 0;
    let samplesOut = 0;
    let minLag = Number.POSITIVE_INFINITY;
    let maxLag = 0;
    for (let k = 0; k < 10 * 60 * 50; k++) {
      samplesIn += chunk.length;
      samplesOut += r.process(chunk).length;
      const lag = (samplesIn * to) / from - samplesOut;
      minLag = Math.min(minLag, lag);
      maxLag = Math.max(maxLag, lag);
    }
    // The running total trails the ideal by the converter's constant hold-back: no drift, chunk after chunk.
    expect(maxLag - minLag).toBeLessThanOrEqual(1);
    expect(Math.abs(maxLag - holdBack)).toBeLessThanOrEqual(2);
    samplesOut += r.flush().length;
    expect(samplesOut).toBe((samplesIn * to) / from);
    expect(r.flush().length).toBe(0);
    r.close();
  });

  it('keeps the count exact on a non-integer ratio (22.05 kHz TTS → 8 kHz), with an odd input total', async () => {
    const r = await Resampler.create(22050, 8000, 'sinc_medium');
    const chunk = sine(22050, 441, 500, 9000);
    let samplesIn = 0;
    let samplesOut = 0;
    for (let k = 0; k < 3001; k++) {
      samplesIn += chunk.length;
      samplesOut += r.process(chunk).length;
    }
    samplesOut += r.flush().length;
    expect(samplesOut).toBe(Math.round((samplesIn * 8000) / 22050));
    r.close();
  });

  it.each(QUALITIES)('%s: the measured hold-back matches RESAMPLER_HOLD_BACK_MS', async (quality) => {
    for (const [from, to] of [
      [8000, 16000],
      [16000, 8000],
    ] as const) {
      const r = await Resampler.create(from, to, quality);
      const n = from; // one second
      const out = r.process(new Int16Array(n));
      const lagMs = (((n * to) / from - out.length) * 1000) / to;
      expect(Math.abs(lagMs - RESAMPLER_HOLD_BACK_MS[quality])).toBeLessThan(0.3);
      r.close();
    }
  });

  it('is a passthrough when the rates match: the same samples, no converter', async () => {
    const r = await Resampler.create(16000, 16000, 'sinc_best');
    expect(r.passthrough).toBe(true);
    const chunk = sine(16000, 320);
    expect(r.process(chunk)).toBe(chunk);
    expect(r.flush().length).toBe(0);
    r.close();
    r.close();
  });

  it('clamps instead of wrapping when sinc ringing overshoots full scale', async () => {
    // A full-scale square wave makes the filter overshoot ±32767; wrapping would flip the sign.
    const square = new Int16Array(1600).map((_, i) => (Math.floor(i / 20) % 2 === 0 ? 32767 : -32768));
    const out = await inOnePiece(square, 8000, 16000, 'sinc_best');
    expect(Math.max(...out)).toBe(32767);
    expect(Math.min(...out)).toBe(-32768);
    for (let i = 100; i < out.length - 100; i++) {
      const expected = square[Math.floor(i / 2)] as number;
      const got = out[i] as number;
      expect(Math.sign(got) === Math.sign(expected) || Math.abs(got) < 20000).toBe(true);
    }
  });

  it('close() is idempotent and makes the resampler unusable', async () => {
    const r = await Resampler.create(8000, 16000, 'sinc_fastest');
    r.process(new Int16Array(160));
    r.close();
    r.close();
    expect(() => r.process(new Int16Array(160))).toThrow(/after close/);
    expect(() => r.flush()).toThrow(/after close/);
  });

  it('rejects process() after flush() and bad rates', async () => {
    const r = await Resampler.create(8000, 16000, 'sinc_fastest');
    r.flush();
    expect(() => r.process(new Int16Array(160))).toThrow(/after flush/);
    r.close();
    await expect(Resampler.create(0, 8000, 'sinc_fastest')).rejects.toThrow(RangeError);
    await expect(Resampler.create(8000, 8000.5, 'sinc_fastest')).rejects.toThrow(RangeError);
  });

  it('8 ↔ 16 kHz at sinc_fastest takes the half-band path (no libsamplerate converter); other cases do not', async () => {
    const before = converterPoolStats().converters;
    const up = await Resampler.create(8000, 16000, 'sinc_fastest');
    const down = await Resampler.create(16000, 8000, 'sinc_fastest');
    expect(converterPoolStats().converters).toBe(before);
    const other = await Resampler.create(8000, 24000, 'sinc_fastest');
    const forced = await Resampler.create(8000, 16000, 'sinc_fastest', { libsamplerate: true });
    expect(converterPoolStats().converters).toBe(before + 2);
    for (const r of [up, down, other, forced]) r.close();
    expect(converterPoolStats().converters).toBe(before);
    expect(usesHalfband(8000, 16000, 'sinc_medium')).toBe(false);
  });
});

/** Amplitude of the `hz` component of `x` (Goertzel over the whole span). */
function toneAmplitude(x: Int16Array, rate: number, hz: number): number {
  const w = (2 * Math.PI * hz) / rate;
  let re = 0;
  let im = 0;
  for (let i = 0; i < x.length; i++) {
    re += (x[i] as number) * Math.cos(w * i);
    im -= (x[i] as number) * Math.sin(w * i);
  }
  return (2 * Math.hypot(re, im)) / x.length;
}

/** Resamples `input` in 20 ms chunks and returns the output without the first and last 50 ms (filter edges). */
async function steady(input: Int16Array, from: number, to: number, options: { libsamplerate?: boolean } = {}): Promise<Int16Array> {
  const r = await Resampler.create(from, to, 'sinc_fastest', options);
  const parts: Int16Array[] = [];
  for (let i = 0; i < input.length; i += from / 50) parts.push(r.process(input.subarray(i, i + from / 50)));
  parts.push(r.flush());
  r.close();
  const out = concat(parts);
  return out.subarray(to / 20, out.length - to / 20);
}

describe('half-band 8 ↔ 16 kHz path: quality bounds', () => {
  it('is bit-exact whatever the chunking (20 ms, odd sizes, one piece)', async () => {
    const input = sine(8000, 8000 * 2, 1000);
    const whole = await inOnePiece(input, 8000, 16000, 'sinc_fastest');
    const r = await Resampler.create(8000, 16000, 'sinc_fastest');
    const parts: Int16Array[] = [];
    for (let i = 0, n = 1; i < input.length; i += n, n = (n * 7 + 3) % 311 || 1) parts.push(r.process(input.subarray(i, i + n)));
    parts.push(r.flush());
    r.close();
    expect(maxAbsDiff(concat(parts), whole)).toBe(0);
  });

  it('passband 100 Hz–3.4 kHz within 0.01 dB both ways', async () => {
    for (const hz of [100, 300, 1000, 2000, 3000, 3400]) {
      const a8 = toneAmplitude(sine(8000, 8000, hz, 16000).subarray(400, -400), 8000, hz);
      const up = toneAmplitude(await steady(sine(8000, 8000, hz, 16000), 8000, 16000), 16000, hz);
      const down = toneAmplitude(await steady(sine(16000, 16000, hz, 16000), 16000, 8000), 8000, hz);
      expect(Math.abs(20 * Math.log10(up / a8)), `${hz} Hz up`).toBeLessThan(0.01);
      expect(Math.abs(20 * Math.log10(down / a8)), `${hz} Hz down`).toBeLessThan(0.01);
    }
  });

  it('stopband: images (8→16) and aliases (16→8) from 4.6 kHz on are at least 80 dB down', async () => {
    for (const hz of [3000, 3400]) {
      // Upsampling a tone at f creates its image at 8000 − f.
      const up = await steady(sine(8000, 8000, hz, 16000), 8000, 16000);
      expect(20 * Math.log10(toneAmplitude(up, 16000, 8000 - hz) / 16000), `image of ${hz} Hz`).toBeLessThan(-80);
    }
    for (const hz of [4600, 5000, 7000]) {
      // Decimating a tone at f aliases it to 8000 − f: it must be filtered out, not folded down.
      const down = await steady(sine(16000, 16000, hz, 16000), 16000, 8000);
      expect(20 * Math.log10(toneAmplitude(down, 8000, 8000 - hz) / 16000), `alias of ${hz} Hz`).toBeLessThan(-80);
    }
  });

  it('matches libsamplerate sinc_best within 60 dB SNR on a multi-tone telephone-band signal', async () => {
    const n = 8000 * 2;
    const input = new Int16Array(n);
    for (let i = 0; i < n; i++) {
      input[i] = Math.round(6000 * (Math.sin(0.08 * i) + Math.sin(0.9 * i + 1) + Math.sin(2.4 * i + 2)));
    }
    const best = await Resampler.create(8000, 16000, 'sinc_best');
    const reference = concat([best.process(input), best.flush()]);
    best.close();
    const ours = await inOnePiece(input, 8000, 16000, 'sinc_fastest');
    let sig = 0;
    let err = 0;
    for (let i = 1600; i < reference.length - 1600; i++) {
      sig += (reference[i] as number) ** 2;
      err += ((reference[i] as number) - (ours[i] as number)) ** 2;
    }
    expect(10 * Math.log10(sig / err)).toBeGreaterThan(60);
  });
});
