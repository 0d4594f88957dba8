// PacedOutput: one frame per tick with the transport's header written in place, silence (or nothing) when idle,
// and a rate change that converts what is queued: nothing dropped, the stream's time kept, no step at the join.

import { describe, expect, it } from 'vitest';
import { OutputClock } from '../../src/audio/clock.js';
import { PacedOutput, RateFollowingPacedOutput, type FrameWriter } from '../../src/audio/paced-output.js';
import { Resampler } from '../../src/audio/resampler.js';
import { SwitchableResampler } from '../../src/audio/switchable-resampler.js';

interface Sent {
  rate: number;
  bot: boolean;
  pcm: Int16Array;
  header: number;
}

function recorder(silence: boolean): { writer: FrameWriter; sent: Sent[] } {
  const sent: Sent[] = [];
  const silent = new Map<number, Buffer>();
  const writer: FrameWriter = {
    headerBytes: 1,
    write(frame, rate, bot) {
      if (bot) frame[0] = rate / 1000;
      const pcm = frame.subarray(1);
      sent.push({ rate, bot, header: frame[0] ?? -1, pcm: new Int16Array(Uint8Array.from(pcm).buffer) });
    },
    silence(rate) {
      if (!silence) return null;
      let f = silent.get(rate);
      if (f === undefined) {
        f = Buffer.alloc(1 + rate / 25);
        f[0] = rate / 1000;
        silent.set(rate, f);
      }
      return f;
    },
  };
  return { writer, sent };
}

function sine(rate: number, samples: number, startSample = 0, hz = 440, amp = 8000): Int16Array {
  const out = new Int16Array(samples);
  for (let i = 0; i < samples; i++) out[i] = Math.round(amp * Math.sin((2 * Math.PI * hz * (startSample + i)) / rate));
  return out;
}

const bytes = (s: Int16Array): Buffer => Buffer.from(s.buffer, s.byteOffset, s.byteLength);

describe('PacedOutput', () => {
  it('writes one frame per tick: bot audio with its header, else the writer’s silence or nothing', () => {
    const a = recorder(true);
    const out = new PacedOutput({ rate: 8000, writer: a.writer, maxFrames: 10 });
    out.push(bytes(sine(8000, 400)));
    out.flush();
    for (let i = 0; i < 4; i++) out.tick();
    expect(a.sent.map((s) => [s.bot, s.header, s.pcm.length])).toEqual([
      [true, 8, 160],
      [true, 8, 160],
      [true, 8, 160],
      [false, 8, 160],
    ]);
    expect(out.botFramesWritten).toBe(3);

    const b = recorder(false);
    const quiet = new PacedOutput({ rate: 16000, writer: b.writer, maxFrames: 10 });
    quiet.tick();
    expect(b.sent).toHaveLength(0);
  });

  it('joins the clock at start() and leaves it at close(), idempotently', () => {
    const clock = new OutputClock();
    const out = new PacedOutput({ rate: 8000, writer: recorder(true).writer, maxFrames: 10 });
    out.start(clock);
    out.start(clock);
    expect(clock.size).toBe(1);
    out.close();
    out.close();
    expect(clock.size).toBe(0);
    clock.close();
  });

  it('counts frames dropped by a full queue', () => {
    const dropped: number[] = [];
    const out = new PacedOutput({ rate: 8000, writer: recorder(true).writer, maxFrames: 2, onDropped: (n) => dropped.push(n) });
    out.push(Buffer.alloc(320 * 5));
    out.tick();
    expect(dropped).toEqual([3]);
  });

  it('a rate change converts the queued audio: same duration, nothing dropped, the sine continues across the join', async () => {
    const a = recorder(true);
    const out = new RateFollowingPacedOutput({ rate: 8000, writer: a.writer, maxFrames: 100 });
    const total = 8000 / 2; // 500 ms at 8 kHz
    out.push(bytes(sine(8000, total)));
    out.push(bytes(sine(8000, 70, total))); // a partial frame is queued too
    for (let i = 0; i < 10; i++) out.tick();
    out.changeRate(await Resampler.create(8000, 16000, 'sinc_fastest'));
    expect(out.sampleRate).toBe(16000);
    out.flush();
    while (out.queuedFrames > 0) out.tick();

    const before = a.sent.filter((s) => s.rate === 8000);
    const after = a.sent.filter((s) => s.rate === 16000);
    expect(before).toHaveLength(10);
    expect(after.every((s) => s.header === 16 && s.pcm.length === 320)).toBe(true);
    // 500 ms + 70 samples = 25.4 frames: 10 played at 8 kHz, the remaining 15.4 converted (the last one padded).
    expect(after).toHaveLength(16);
    const converted = new Int16Array(after.length * 320);
    after.forEach((s, i) => converted.set(s.pcm, i * 320));
    // The converted stream is the same sine at 16 kHz, from where the 8 kHz frames stopped (sample 1600 of 8 kHz
    // = 3200 at 16 kHz): no gap, no repeat, and no step at the join.
    const ideal = sine(16000, 15 * 320, 3200);
    let worst = 0;
    for (let i = 0; i < ideal.length - 64; i++) worst = Math.max(worst, Math.abs((converted[i] as number) - (ideal[i] as number)));
    expect(worst).toBeLessThan(800); // 10 % of the amplitude: the join carries no click
  });

  it('a rate change with nothing queued just switches; a converter for the wrong rate is refused and closed', async () => {
    const a = recorder(true);
    const out = new RateFollowingPacedOutput({ rate: 8000, writer: a.writer, maxFrames: 10 });
    out.tick();
    const wrong = await Resampler.create(16000, 8000, 'sinc_fastest');
    expect(() => out.changeRate(wrong)).toThrow(RangeError);
    expect(() => wrong.process(new Int16Array(4))).toThrow(/after close/);
    out.changeRate(await Resampler.create(8000, 16000, 'sinc_fastest'));
    out.tick();
    expect(a.sent.map((s) => [s.header, s.pcm.length])).toEqual([
      [8, 160],
      [16, 320],
    ]);
  });
});

describe('SwitchableResampler', () => {
  it('hands back the old converter’s held-back tail and fades the new stream in', async () => {
    const r = new SwitchableResampler(await Resampler.create(16000, 8000, 'sinc_fastest'));
    const input = sine(16000, 3200);
    const out = r.process(input);
    expect(out.length).toBeLessThan(1600); // the converter holds its look-ahead back
    const tail = r.swap(await Resampler.create(16000, 16000, 'sinc_fastest'));
    expect(out.length + tail.length).toBe(1600); // exact: nothing lost
    expect(r.toRate).toBe(16000);
    const flat = new Int16Array(400).fill(10000);
    const next = r.process(flat);
    expect(next).not.toBe(flat); // the caller's buffer is not faded in place
    expect(flat[0]).toBe(10000);
    expect(next[0]).toBe(0);
    expect(next[48]).toBeGreaterThan(4000);
    expect(next[48]).toBeLessThan(6000);
    expect(next[200]).toBe(10000);
    r.close();
    r.close();
  });
});
