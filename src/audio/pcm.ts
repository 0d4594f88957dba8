// Sizes and constants of s16le mono PCM, the only sample format on the Audiosocket wire and in the pipeline.

/** Every paced output frame and every frame Asterisk sends is 20 ms. */
export const FRAME_MS = 20;
export const BYTES_PER_SAMPLE = 2;

/** Samples in `ms` of audio at `rate` Hz; throws when that is not a whole number (it is for every wire rate). */
export function frameSamples(rate: number, ms = FRAME_MS): number {
  const samples = (rate * ms) / 1000;
  if (!Number.isInteger(samples) || samples <= 0) {
    throw new RangeError(`${ms} ms at ${rate} Hz is not a whole number of samples`);
  }
  return samples;
}

/** Bytes of s16le mono PCM in `ms` at `rate` Hz: 8 kHz, 20 ms → 320. */
export function frameBytes(rate: number, ms = FRAME_MS): number {
  return frameSamples(rate, ms) * BYTES_PER_SAMPLE;
}

/** A fresh zeroed buffer: `ms` of digital silence at `rate` Hz. */
export function silence(rate: number, ms = FRAME_MS): Buffer {
  return Buffer.alloc(frameBytes(rate, ms));
}

/** Duration in milliseconds of `bytes` of s16le mono PCM at `rate` Hz. */
export function pcmDurationMs(bytes: number, rate: number): number {
  return (bytes / BYTES_PER_SAMPLE / rate) * 1000;
}
