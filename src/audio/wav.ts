// Minimal RIFF/WAVE reader and writer for 16-bit PCM: test prompts, `call dial --wav/--out`, and espeak-ng output.

import { endianness } from 'node:os';

export interface WavAudio {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** Interleaved samples when channels > 1. */
  samples: Int16Array;
}

const FORMAT_PCM = 1;
const FORMAT_EXTENSIBLE = 0xfffe;

/** Parses a 16-bit PCM WAV file. Unknown chunks (LIST, fact, …) are skipped; anything else is a clear error. */
export function readWav(buf: Buffer): WavAudio {
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WAVE') {
    throw new Error('not a WAV file: missing RIFF/WAVE header');
  }
  let fmt: { sampleRate: number; channels: number; bitsPerSample: number } | undefined;
  let pos = 12;
  while (pos + 8 <= buf.length) {
    const id = buf.toString('latin1', pos, pos + 4);
    const size = buf.readUInt32LE(pos + 4);
    const body = pos + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > buf.length) throw new Error('WAV fmt chunk is truncated');
      const format = buf.readUInt16LE(body);
      const channels = buf.readUInt16LE(body + 2);
      const sampleRate = buf.readUInt32LE(body + 4);
      const bitsPerSample = buf.readUInt16LE(body + 14);
      // WAVE_FORMAT_EXTENSIBLE carries the real format in the first 2 bytes of its SubFormat GUID.
      const real = format === FORMAT_EXTENSIBLE && size >= 26 && body + 26 <= buf.length ? buf.readUInt16LE(body + 24) : format;
      if (real !== FORMAT_PCM) throw new Error(`unsupported WAV format ${format}: only PCM is supported`);
      if (bitsPerSample !== 16) throw new Error(`unsupported WAV sample size ${bitsPerSample} bits: only 16-bit PCM`);
      if (channels < 1 || sampleRate < 1) throw new Error('WAV fmt chunk has no channels or no sample rate');
      fmt = { sampleRate, channels, bitsPerSample };
    } else if (id === 'data') {
      if (fmt === undefined) throw new Error('WAV data chunk comes before its fmt chunk');
      // Streamed WAVs (espeak-ng --stdout) cannot seek back to fix the size and write a huge placeholder.
      const available = Math.min(size, buf.length - body);
      const frame = fmt.channels * 2;
      const bytes = available - (available % frame);
      return { ...fmt, samples: toInt16(buf.subarray(body, body + bytes)) };
    }
    pos = body + size + (size % 2); // chunks are word-aligned
  }
  throw new Error(fmt === undefined ? 'WAV file has no fmt chunk' : 'WAV file has no data chunk');
}

/** A mono 16-bit PCM WAV file of `samples` (an Int16Array, or s16le bytes). */
export function encodeWav(samples: Int16Array | Buffer, sampleRate: number): Buffer {
  const data = samples instanceof Int16Array ? int16Bytes(samples) : samples;
  if (data.length % 2 !== 0) throw new RangeError('s16le PCM must be an even number of bytes');
  const out = Buffer.allocUnsafe(44 + data.length);
  out.write('RIFF', 0, 'latin1');
  out.writeUInt32LE(36 + data.length, 4);
  out.write('WAVEfmt ', 8, 'latin1');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(FORMAT_PCM, 20);
  out.writeUInt16LE(1, 22);
  out.writeUInt32LE(sampleRate, 24);
  out.writeUInt32LE(sampleRate * 2, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36, 'latin1');
  out.writeUInt32LE(data.length, 40);
  data.copy(out, 44);
  return out;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/** An aligned copy (the data chunk may start at an odd offset), in host byte order. */
function toInt16(le: Buffer): Int16Array {
  const out = new Int16Array(le.length / 2);
  const bytes = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  bytes.set(le);
  if (!LITTLE_ENDIAN) bytes.swap16();
  return out;
}

function int16Bytes(samples: Int16Array): Buffer {
  const view = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  return LITTLE_ENDIAN ? view : Buffer.from(view).swap16();
}
