// Converter pool: many resampler streams share one libsamplerate module per quality and rates, and each still
// behaves exactly as if it had a module of its own (SPEC §2.3: one stateful converter per direction per call).

import { describe, expect, it } from 'vitest';
import { acquireConverter, converterPoolStats } from '../../src/audio/converter-pool.js';
import { Resampler } from '../../src/audio/resampler.js';

function speechLike(rate: number, samples: number, seed: number): Int16Array {
  const out = new Int16Array(samples);
  for (let i = 0; i < samples; i++) {
    const t = i / rate;
    out[i] = Math.round(9000 * Math.sin(2 * Math.PI * (180 + 40 * seed) * t) * Math.sin(2 * Math.PI * 3 * t) + 2000 * Math.sin(2 * Math.PI * 1400 * t + seed));
  }
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

describe('converter pool', () => {
  it('works with the installed libsamplerate-js build (converters share a module)', async () => {
    // 8 ↔ 16 kHz at sinc_fastest takes the half-band path by default; the pool is what libsamplerate uses.
    const a = await Resampler.create(8000, 16000, 'sinc_fastest', { libsamplerate: true });
    const b = await Resampler.create(8000, 16000, 'sinc_fastest', { libsamplerate: true });
    const stats = converterPoolStats();
    expect(stats.sharing).toBe(true);
    expect(stats.converters).toBeGreaterThanOrEqual(2);
    a.close();
    b.close();
  });

  it.each(['sinc_fastest', 'sinc_medium', 'sinc_best'] as const)(
    '%s: 40 streams fed interleaved in 20 ms chunks each equal the same stream resampled alone',
    async (quality) => {
      const streams = 40;
      const inputs = Array.from({ length: streams }, (_, k) => speechLike(8000, 8000, k));
      const shared = await Promise.all(inputs.map(() => Resampler.create(8000, 16000, quality, { libsamplerate: true })));
      const outputs: Int16Array[][] = inputs.map(() => []);
      for (let off = 0; off < 8000; off += 160) {
        shared.forEach((r, k) => outputs[k]?.push(r.process((inputs[k] as Int16Array).subarray(off, off + 160))));
      }
      shared.forEach((r, k) => outputs[k]?.push(r.flush()));
      for (const r of shared) r.close();

      for (let k = 0; k < streams; k += 13) {
        // Alone: nothing else uses the module between its chunks.
        const alone = await Resampler.create(8000, 16000, quality, { libsamplerate: true });
        const parts: Int16Array[] = [];
        for (let off = 0; off < 8000; off += 160) parts.push(alone.process((inputs[k] as Int16Array).subarray(off, off + 160)));
        parts.push(alone.flush());
        alone.close();
        expect(concat(outputs[k] ?? [])).toEqual(concat(parts));
      }
    },
  );

  it('opens another module when one is full and drops it again once it is empty', async () => {
    // sinc_best states are ≈ 430 KiB: a module holds ≈ 29 of them. A rate pair no other test uses.
    const before = converterPoolStats().modules;
    const converters = await Promise.all(Array.from({ length: 40 }, () => acquireConverter('sinc_best', 11025, 8000)));
    expect(converterPoolStats().modules).toBe(before + 2);
    const frames = { frames: 0 };
    const out = new Float32Array(400);
    for (const c of converters) c.full(new Float32Array(441).fill(0.1), out, frames);
    for (const c of converters) c.release();
    for (const c of converters) c.release(); // idempotent
    expect(converterPoolStats().modules).toBe(before + 1);
  });
});
