// OutputQueue: exact 20 ms frames with header room, remainder carried across pushes, drop-oldest, barge-in clear,
// drained back to PCM for a rate change.

import { describe, expect, it } from 'vitest';
import { OutputQueue } from '../../src/audio/output-queue.js';
import { silenceFrame } from '../../src/transports/audiosocket/media.js';
import { frameBytes, silence } from '../../src/audio/pcm.js';

/** s16le PCM whose byte i is (start + i) & 0xff: frames can be checked for continuity. */
function ramp(bytes: number, start = 0): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (start + i) & 0xff;
  return b;
}

describe('pcm helpers', () => {
  it('sizes 20 ms frames at every wire rate', () => {
    expect(frameBytes(8000)).toBe(320);
    expect(frameBytes(16000)).toBe(640);
    expect(frameBytes(44100)).toBe(1764);
    expect(frameBytes(8000, 10)).toBe(160);
    expect(silence(16000)).toEqual(Buffer.alloc(640));
    expect(() => frameBytes(44100, 1)).toThrow(RangeError);
  });
});

describe('OutputQueue', () => {
  it('cuts PCM into exact 20 ms frames behind room for a header, carrying the remainder', () => {
    const q = new OutputQueue(8000, 100, 3);
    const pcm = ramp(1000);
    expect(q.pushPcm(pcm.subarray(0, 500))).toBe(1); // 320 queued, 180 carried
    expect(q.pushPcm(pcm.subarray(500))).toBe(2); // 180 + 500 = 680 → 2 frames, 40 carried
    expect(q.length).toBe(3);
    expect(q.durationMs).toBe(60);
    const frames = [q.shift(), q.shift(), q.shift()];
    for (const [i, f] of frames.entries()) {
      expect(f?.subarray(3)).toEqual(pcm.subarray(i * 320, (i + 1) * 320));
    }
    expect(q.shift()).toBeUndefined();
    expect(q.flushRemainder()).toBe(true);
    const last = q.shift();
    expect(last?.length).toBe(323);
    expect(last?.subarray(3, 43)).toEqual(pcm.subarray(960));
    expect(last?.subarray(43)).toEqual(Buffer.alloc(280)); // padded with silence
    expect(q.flushRemainder()).toBe(false);
  });

  it('copies the PCM: later changes to the caller buffer do not reach queued frames', () => {
    const q = new OutputQueue(16000, 10, 3);
    const pcm = ramp(640);
    q.pushPcm(pcm);
    pcm.fill(0);
    expect(q.shift()?.subarray(3)).toEqual(ramp(640));
  });

  it('drops the oldest frame when full and counts it', () => {
    const q = new OutputQueue(8000, 3, 3);
    for (let i = 0; i < 5; i++) q.pushPcm(Buffer.alloc(320, i));
    expect(q.length).toBe(3);
    expect(q.dropped).toBe(2);
    expect([q.shift()?.[3], q.shift()?.[3], q.shift()?.[3]]).toEqual([2, 3, 4]);
  });

  it('without header room a frame is the PCM alone', () => {
    const q = new OutputQueue(16000, 10);
    q.pushPcm(ramp(700));
    expect(q.shift()).toEqual(ramp(640));
  });

  it('drainPcm() hands back every queued frame and the remainder as one run, and empties the queue', () => {
    const q = new OutputQueue(8000, 100, 3);
    const pcm = ramp(320 * 3 + 50);
    q.pushPcm(pcm);
    q.shift();
    expect(q.drainPcm()).toEqual(pcm.subarray(320));
    expect(q.length).toBe(0);
    expect(q.flushRemainder()).toBe(false);
    q.pushPcm(ramp(320, 9));
    expect(q.shift()?.subarray(3)).toEqual(ramp(320, 9));
  });

  it('clear() empties the queue and the remainder at once (barge-in)', () => {
    const q = new OutputQueue(8000, 100, 3);
    q.pushPcm(ramp(320 * 4 + 100));
    expect(q.clear()).toBe(4);
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
    expect(q.flushRemainder()).toBe(false);
    expect(q.dropped).toBe(0); // a barge-in is not an overflow
    q.pushPcm(ramp(320, 7));
    expect(q.shift()?.subarray(3)).toEqual(ramp(320, 7));
  });

  it('shares one pre-encoded silence frame per kind', () => {
    const s = silenceFrame(0x10);
    expect(s).toBe(silenceFrame(0x10));
    expect(s.toString('hex')).toBe('100140' + '00'.repeat(320));
    expect(silenceFrame(0x12).length).toBe(643);
    expect(() => silenceFrame(0x01)).toThrow(RangeError);
  });
});
