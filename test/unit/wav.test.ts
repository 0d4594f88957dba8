// WAV reader/writer: round trip, skipped chunks, streamed sizes, clear errors, and a real Asterisk prompt.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { encodeWav, readWav } from '../../src/audio/wav.js';

const HELLO_WORLD = '/usr/share/asterisk/sounds/en/hello-world.wav';

describe('wav', () => {
  it('round-trips mono s16le', () => {
    const samples = Int16Array.from({ length: 1601 }, (_, i) => Math.round(Math.sin(i / 5) * 30000));
    const wav = encodeWav(samples, 16000);
    expect(wav.length).toBe(44 + 1601 * 2);
    const back = readWav(wav);
    expect(back.sampleRate).toBe(16000);
    expect(back.channels).toBe(1);
    expect(back.bitsPerSample).toBe(16);
    expect(back.samples).toEqual(samples);
    const fromBytes = encodeWav(Buffer.from(samples.buffer), 16000);
    expect(fromBytes).toEqual(wav);
  });

  it('skips unknown chunks (LIST) and tolerates a streamed data size', () => {
    const wav = encodeWav(Int16Array.from([1, -2, 3]), 8000);
    const list = Buffer.concat([Buffer.from('LIST'), Buffer.from([5, 0, 0, 0]), Buffer.from('INFOx'), Buffer.alloc(1)]);
    const withList = Buffer.concat([wav.subarray(0, 36), list, wav.subarray(36)]);
    expect(Array.from(readWav(withList).samples)).toEqual([1, -2, 3]);
    const streamed = Buffer.from(wav);
    streamed.writeUInt32LE(0xffffffff, 40); // espeak-ng --stdout cannot seek back to write the size
    expect(Array.from(readWav(streamed).samples)).toEqual([1, -2, 3]);
  });

  it('fails clearly on what it does not read', () => {
    expect(() => readWav(Buffer.from('not a wav file at all'))).toThrow(/RIFF/);
    const wav = encodeWav(Int16Array.from([1]), 8000);
    const eight = Buffer.from(wav);
    eight.writeUInt16LE(8, 34);
    expect(() => readWav(eight)).toThrow(/16-bit/);
    const float = Buffer.from(wav);
    float.writeUInt16LE(3, 20);
    expect(() => readWav(float)).toThrow(/only PCM/);
    expect(() => readWav(wav.subarray(0, 36))).toThrow(/no data chunk/);
  });

  it('reads the real Asterisk hello-world prompt', () => {
    const wav = readWav(readFileSync(HELLO_WORLD));
    expect(wav.sampleRate).toBe(8000);
    expect(wav.channels).toBe(1);
    expect(wav.bitsPerSample).toBe(16);
    expect(wav.samples.length).toBeGreaterThan(0);
    expect(wav.samples.length / wav.sampleRate).toBeGreaterThan(1); // "hello world" lasts over a second
  });
});
