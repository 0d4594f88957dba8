// One stateful libsamplerate converter for one direction of one call (SPEC §2.3): s16 chunks in, s16 chunks out,
// filter state carried across chunks (a converter per chunk clicks), and an exact output length over the call.

import type { ResamplerQuality } from '../config.js';
import { CONVERTER_TYPE, acquireConverter, type Converter } from './converter-pool.js';
import { HalfbandResampler } from './halfband-resampler.js';

/**
 * The library's WASM side owns fixed 1,008,000-float transfer buffers; a `full()` call bigger than that silently
 * switches to an allocating path that ignores our output buffer. Large inputs are therefore fed in pieces.
 */
const MAX_PIECE = 16_384;

/**
 * Measured on this machine (impulse through 20 ms chunks): the converter's output is time-aligned with its input
 * (an impulse at input t comes out at exactly t × ratio) — it does not prepend a delay, it *holds back* its
 * half-filter look-ahead. Held back: sinc_fastest 2.5 ms (40 samples at 16 kHz, 19 at 8 kHz), sinc_medium 5.9 ms
 * (94 / 46), sinc_best 18 ms (288 / 143). `flush()` pushes that tail out with zeros.
 * Throughput (20 ms chunks, CPU time): fastest ≈550× (8→16 kHz) / ≈680× (16→8 kHz) real time, medium ≈340× /
 * ≈370×, best ≈80× / ≈110×. The 8 ↔ 16 kHz half-band path (sinc_fastest) holds back the same 2.5 ms and runs
 * 5–7× faster than libsamplerate's sinc_fastest (bench: `micro.ts resampler-compare`).
 */
export const RESAMPLER_HOLD_BACK_MS: Readonly<Record<ResamplerQuality, number>> = {
  sinc_fastest: 2.5,
  sinc_medium: 5.9,
  sinc_best: 18,
};

export class Resampler {
  readonly fromRate: number;
  readonly toRate: number;
  readonly quality: ResamplerQuality;
  private converter: Converter | undefined;
  /** The dedicated 8 ↔ 16 kHz path (halfband-resampler.ts), used instead of a converter when set. */
  private halfband: HalfbandResampler | undefined;
  private readonly ratio: number;
  private scratchIn: Float32Array;
  private scratchOut: Float32Array;
  private readonly frames = { frames: 0 };
  private samplesIn = 0;
  private samplesOut = 0;
  private flushed = false;
  private closed = false;

  private constructor(
    fromRate: number,
    toRate: number,
    quality: ResamplerQuality,
    converter: Converter | undefined,
    halfband?: HalfbandResampler,
  ) {
    this.fromRate = fromRate;
    this.toRate = toRate;
    this.quality = quality;
    this.converter = converter;
    this.halfband = halfband;
    this.ratio = toRate / fromRate;
    this.scratchIn = new Float32Array(converter === undefined ? 0 : Math.ceil(fromRate / 50));
    this.scratchOut = new Float32Array(converter === undefined ? 0 : this.outCapacity(this.scratchIn.length));
  }

  /**
   * The converter is a state in a module shared with other streams of the same quality and rates
   * (converter-pool.ts): ≈ 60 KiB and a few microseconds for sinc_fastest, where a module of its own costs
   * ≈ 1.5 MiB resident and 4–20 ms of blocked event loop. Only the first converter of a kind (and of every
   * further ≈ 200) pays for a module: still call this at call setup, never on the audio path. Equal rates need
   * no converter at all (e.g. a `slin16` call into the 16 kHz pipeline). `libsamplerate: true` skips the
   * dedicated 8 ↔ 16 kHz path (the bench compares the two).
   */
  static async create(
    fromRate: number,
    toRate: number,
    quality: ResamplerQuality,
    options: { libsamplerate?: boolean } = {},
  ): Promise<Resampler> {
    for (const [name, rate] of [['fromRate', fromRate], ['toRate', toRate]] as const) {
      if (!Number.isInteger(rate) || rate < 1 || rate > 192_000) {
        throw new RangeError(`${name} must be a whole number of Hz from 1 to 192000, got ${rate}`);
      }
    }
    if (!(quality in CONVERTER_TYPE)) throw new RangeError(`unknown resampler quality ${String(quality)}`);
    if (fromRate === toRate) return new Resampler(fromRate, toRate, quality, undefined);
    if (options.libsamplerate !== true && usesHalfband(fromRate, toRate, quality)) {
      return new Resampler(fromRate, toRate, quality, undefined, new HalfbandResampler(toRate > fromRate));
    }
    return new Resampler(fromRate, toRate, quality, await acquireConverter(quality, fromRate, toRate));
  }

  /** True when the rates match and `process()` hands back its input untouched. */
  get passthrough(): boolean {
    return this.converter === undefined && this.halfband === undefined && !this.closed;
  }

  /**
   * Resamples the next chunk of the stream. The result is a fresh array, except in passthrough where it IS `input`.
   * Its length varies by a sample or so from chunk to chunk; the running total trails round(in × ratio) by the
   * converter's hold-back (see RESAMPLER_HOLD_BACK_MS) and never drifts, and `flush()` makes it exact.
   */
  process(input: Int16Array): Int16Array {
    if (this.closed) throw new Error('Resampler.process() after close()');
    if (this.flushed) throw new Error('Resampler.process() after flush(): the stream has ended');
    this.samplesIn += input.length;
    if (this.halfband !== undefined) {
      const out = this.halfband.process(input);
      this.samplesOut += out.length;
      return out;
    }
    const converter = this.converter;
    if (converter === undefined) {
      this.samplesOut += input.length;
      return input;
    }
    if (input.length <= MAX_PIECE) return this.takeOutput(this.convert(converter, input, 0, input.length));
    // Rare (tests, whole files): feed in pieces and concatenate.
    const parts: Int16Array[] = [];
    let total = 0;
    for (let off = 0; off < input.length; off += MAX_PIECE) {
      const n = this.convert(converter, input, off, Math.min(input.length, off + MAX_PIECE));
      const part = this.takeOutput(n);
      parts.push(part);
      total += part.length;
    }
    const out = new Int16Array(total);
    let pos = 0;
    for (const part of parts) {
      out.set(part, pos);
      pos += part.length;
    }
    return out;
  }

  /**
   * Ends the stream: pushes the held-back tail out with zeros and returns exactly what is missing for the total
   * output to equal round(total input × toRate / fromRate). Later calls return an empty array.
   */
  flush(): Int16Array {
    if (this.closed) throw new Error('Resampler.flush() after close()');
    if (this.flushed) return new Int16Array(0);
    this.flushed = true;
    const missing = this.ideal() - this.samplesOut;
    if (this.halfband !== undefined) {
      this.samplesOut += Math.max(0, missing);
      return this.halfband.drain(Math.max(0, missing));
    }
    const out = new Int16Array(Math.max(0, missing));
    const converter = this.converter;
    if (converter === undefined || missing <= 0) return out;
    // Zeros in blocks of 10 ms until the converter has released the whole tail. The hold-back is at most ≈18 ms,
    // so this ends after a few blocks; the cap keeps a misbehaving converter from looping, and any shortfall
    // is then filled with silence (the length guarantee wins).
    const block = Math.max(1, Math.ceil(this.fromRate / 100));
    const zeros = new Int16Array(block);
    let filled = 0;
    for (let i = 0; i < 100 && filled < missing; i++) {
      const n = this.convert(converter, zeros, 0, block);
      const take = Math.min(n, missing - filled);
      toInt16(this.scratchOut, take, out, filled);
      filled += take;
    }
    this.samplesOut += missing;
    return out;
  }

  /** Releases the converter. Idempotent; the object is unusable afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const converter = this.converter;
    this.converter = undefined;
    this.halfband = undefined;
    converter?.release();
    this.scratchIn = new Float32Array(0);
    this.scratchOut = new Float32Array(0);
  }

  /** Total output due for the input so far: round(in × to / from), computed in exact integer arithmetic. */
  private ideal(): number {
    return Math.floor((2 * this.samplesIn * this.toRate + this.fromRate) / (2 * this.fromRate));
  }

  /** Worst-case output of one `full()` call of `n` inputs: n × ratio plus the whole held-back tail (≤ 18 ms). */
  private outCapacity(n: number): number {
    return Math.ceil(n * this.ratio) + Math.ceil(this.toRate / 20) + 16;
  }

  /** Runs `input[from, to)` through the converter into `scratchOut`; returns the frames produced. */
  private convert(converter: Converter, input: Int16Array, from: number, to: number): number {
    const n = to - from;
    if (this.scratchIn.length < n) this.scratchIn = new Float32Array(n);
    const need = this.outCapacity(n);
    if (this.scratchOut.length < need) this.scratchOut = new Float32Array(need);
    const scratchIn = this.scratchIn;
    for (let i = 0; i < n; i++) scratchIn[i] = (input[from + i] as number) / 32768;
    converter.full(scratchIn.subarray(0, n), this.scratchOut, this.frames);
    return this.frames.frames;
  }

  /** Copies the `n` frames just produced out of `scratchOut` as s16 and counts them. */
  private takeOutput(n: number): Int16Array {
    const out = new Int16Array(n);
    toInt16(this.scratchOut, n, out, 0);
    this.samplesOut += n;
    return out;
  }
}

/**
 * The half-band path serves the telephone ratio at sinc_fastest (the default): same hold-back, flatter passband
 * (0.0005 dB to 3.4 kHz) and a stopband ≥ 90 dB from 4.6 kHz, at several times the speed (BENCHMARKS.md). The higher
 * qualities and every other ratio keep libsamplerate.
 */
export function usesHalfband(fromRate: number, toRate: number, quality: ResamplerQuality): boolean {
  return quality === 'sinc_fastest' && ((fromRate === 8000 && toRate === 16000) || (fromRate === 16000 && toRate === 8000));
}

/** float → s16 with rounding and clamping: sinc ringing on a full-scale input overshoots ±1. */
function toInt16(src: Float32Array, n: number, dst: Int16Array, at: number): void {
  for (let i = 0; i < n; i++) {
    const v = Math.round((src[i] as number) * 32768);
    dst[at + i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
}
