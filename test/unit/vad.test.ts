// SileroVad on real Asterisk prompts (8 kHz WAVs resampled to 16 kHz with our Resampler): turn start/stop timing,
// silence and noise rejection, vad_config effects, backlog dropping and close().

import { afterEach, describe, expect, it } from 'vitest';
import { prompt16k as prompt, whiteNoise } from '../helpers/prompts.js';
import { SileroVad, VAD_WINDOW_SAMPLES, windowVolume, type VadParams } from '../../src/providers/vad/silero.js';

const RATE = 16000;
const CHUNK = 320; // 20 ms, as the pipeline delivers it
const LOUD = 500; // |sample| above this counts as "speech has begun/ended" for the timing checks


/** Pieces laid end to end; a number is that many seconds of digital silence. */
function sequence(...pieces: ReadonlyArray<Int16Array | number>): Int16Array {
  const arrays = pieces.map((p) => (typeof p === 'number' ? new Int16Array(Math.round(p * RATE)) : p));
  const out = new Int16Array(arrays.reduce((n, a) => n + a.length, 0));
  let pos = 0;
  for (const a of arrays) {
    out.set(a, pos);
    pos += a.length;
  }
  return out;
}

const noise = (seconds: number, rms: number): Int16Array => whiteNoise(Math.round(seconds * RATE), rms);

function loudSpan(pcm: Int16Array): { first: number; last: number } {
  let first = -1;
  let last = -1;
  for (let i = 0; i < pcm.length; i++) {
    if (Math.abs(pcm[i] as number) > LOUD) {
      if (first < 0) first = i;
      last = i;
    }
  }
  return { first: first / RATE, last: last / RATE };
}

interface Run {
  events: Array<{ kind: 'start' | 'stop' | 'pause' | 'resume'; at: number }>;
  vad: SileroVad;
  cpuMsPerWindow: number;
}

const open: SileroVad[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((v) => v.close()));
});

/** Feeds 20 ms chunks the way the live pipeline does: each chunk is analysed before the next one arrives. */
async function feed(pcm: Int16Array, params: Partial<VadParams> = {}, pauseSecs = 0): Promise<Run> {
  const events: Run['events'] = [];
  const errors: Error[] = [];
  const vad = await SileroVad.create({
    params,
    onSpeechStart: (at) => events.push({ kind: 'start', at: at / RATE }),
    onSpeechStop: (at) => events.push({ kind: 'stop', at: at / RATE }),
    onSpeechPause: (at) => events.push({ kind: 'pause', at: at / RATE }),
    onSpeechResume: (at) => events.push({ kind: 'resume', at: at / RATE }),
    pauseSecs,
    onError: (err) => errors.push(err),
  });
  open.push(vad);
  const t0 = process.cpuUsage();
  for (let i = 0; i < pcm.length; i += CHUNK) {
    vad.write(pcm.subarray(i, i + CHUNK));
    await vad.drained();
  }
  const used = process.cpuUsage(t0);
  expect(errors).toEqual([]);
  expect(vad.droppedWindows).toBe(0);
  expect(vad.analysedWindows).toBe(Math.floor(pcm.length / VAD_WINDOW_SAMPLES));
  return { events, vad, cpuMsPerWindow: (used.user + used.system) / 1000 / vad.analysedWindows };
}

describe('SileroVad', () => {
  it('hello-world.wav: one start near the onset, one stop stop_secs after the speech', async () => {
    const speech = await prompt('hello-world');
    const pcm = sequence(1, speech, 1.5);
    const { first, last } = loudSpan(pcm);
    const { events, vad } = await feed(pcm);
    expect(events.map((e) => e.kind)).toEqual(['start', 'stop']);
    const [start, stop] = events as [Run['events'][0], Run['events'][0]];
    // start_secs of speech windows (6 × 32 ms), give or take a window of Silero ramp-up.
    expect(start.at - first).toBeGreaterThan(0.2 - 0.07);
    expect(start.at - first).toBeLessThan(0.2 + 0.1);
    expect(Math.abs(stop.at - last - 0.8)).toBeLessThan(0.15);
    expect(vad.state).toBe('quiet');
    console.log(
      `VAD hello-world: loud ${first.toFixed(3)}–${last.toFixed(3)} s, start ${start.at.toFixed(3)} s, ` +
        `stop ${stop.at.toFixed(3)} s`,
    );
  });

  it('measures CPU per 512-sample window (printed; asserted only against pathologies)', async () => {
    const pcm = sequence(0.5, await prompt('agent-pass'), 0.5, await prompt('conf-onlyperson'), 1);
    const cold = await feed(pcm);
    const warm = await feed(pcm);
    console.log(
      `VAD CPU per ${VAD_WINDOW_SAMPLES}-sample window (inference + windowing + one event-loop turn): ` +
        `${cold.cpuMsPerWindow.toFixed(3)} ms first call, ${warm.cpuMsPerWindow.toFixed(3)} ms warm ` +
        `(${warm.vad.analysedWindows} windows)`,
    );
    expect(warm.cpuMsPerWindow).toBeLessThan(5);
  });

  it('pure silence and low-level noise never start a turn', async () => {
    expect((await feed(sequence(3))).events).toEqual([]);
    // −60 dBFS noise: a quiet line. Its volume (≈0.49) is under min_volume whatever Silero thinks of it.
    expect((await feed(noise(3, 33))).events).toEqual([]);
  });

  it('two prompts 2 s apart give two start/stop pairs', async () => {
    const pcm = sequence(0.5, await prompt('hello-world'), 2, await prompt('vm-goodbye'), 1.5);
    const { events } = await feed(pcm);
    expect(events.map((e) => e.kind)).toEqual(['start', 'stop', 'start', 'stop']);
    const ats = events.map((e) => e.at);
    expect([...ats].sort((a, b) => a - b)).toEqual(ats);
  });

  it('reports pauses inside speech when asked: pause, resume when speech comes back, pause then stop', async () => {
    const pcm = sequence(0.5, await prompt('hello-world'), 0.45, await prompt('vm-goodbye'), 1.5);
    const plain = (await feed(pcm)).events.map((e) => e.kind);
    expect(plain).toEqual(['start', 'stop']);
    const { events } = await feed(pcm, {}, 0.128);
    const kinds = events.map((e) => e.kind);
    // The same turn as without pauses, with the 0.45 s gap (and any longer gap inside a prompt) as pauses.
    expect(kinds.filter((k) => k === 'start' || k === 'stop')).toEqual(['start', 'stop']);
    expect(kinds.at(-2)).toBe('pause');
    expect(kinds.filter((k) => k === 'resume').length).toBeGreaterThanOrEqual(1);
    for (let i = 1; i < kinds.length - 1; i++) {
      if (kinds[i] === 'pause') expect(kinds[i + 1]).toMatch(/^(resume|stop)$/);
      if (kinds[i] === 'resume') expect(kinds[i - 1]).toBe('pause');
    }
    // The last pause came 0.128 s into the silence that the stop ends at 0.8 s (whole windows: 4 and 25).
    const stop = events.at(-1)?.at ?? 0;
    const pause = events.at(-2)?.at ?? 0;
    expect(stop - pause).toBeCloseTo((25 - 4) * 0.032, 5);
    // The stop is where it is without pause reports.
    expect(stop).toBe((await feed(pcm)).events.at(-1)?.at);
  });

  it('vad_config stop_secs 0.3 stops 0.3 s after the speech (and earlier than the default)', async () => {
    const pcm = sequence(1, await prompt('hello-world'), 1.5);
    const { last } = loudSpan(pcm);
    const fast = await feed(pcm, { stop_secs: 0.3 });
    expect(fast.events.map((e) => e.kind)).toEqual(['start', 'stop']);
    const stop = fast.events[1]?.at ?? Number.NaN;
    expect(Math.abs(stop - last - 0.3)).toBeLessThan(0.15);
    const slow = await feed(pcm);
    expect((slow.events[1]?.at ?? 0) - stop).toBeCloseTo(0.8 - 0.3, 1);
  });

  it('volume: telephone speech passes min_volume 0.6, silence and −60 dBFS noise do not', async () => {
    const window = new Float32Array(VAD_WINDOW_SAMPLES);
    const volumes = (pcm: Int16Array): number[] => {
      const out: number[] = [];
      for (let at = 0; at + VAD_WINDOW_SAMPLES <= pcm.length; at += VAD_WINDOW_SAMPLES) {
        for (let i = 0; i < VAD_WINDOW_SAMPLES; i++) window[i] = (pcm[at + i] as number) / 32768;
        out.push(windowVolume(window));
      }
      return out;
    };
    for (const name of ['hello-world', 'vm-goodbye', 'agent-pass', 'conf-onlyperson']) {
      const v = volumes(await prompt(name)).sort((a, b) => a - b);
      const median = v[Math.floor(v.length / 2)] ?? 0;
      expect(median, name).toBeGreaterThan(0.75);
    }
    expect(Math.max(...volumes(sequence(1)))).toBe(0);
    expect(Math.max(...volumes(noise(1, 33)))).toBeLessThan(0.55);
  });

  it('drops and counts the oldest windows when inference falls more than 1 s behind', async () => {
    const vad = await SileroVad.create();
    open.push(vad);
    const pcm = sequence(5); // 5 s pushed at once: far more than the model can have analysed
    for (let i = 0; i < pcm.length; i += CHUNK) vad.write(pcm.subarray(i, i + CHUNK));
    await vad.drained();
    const windows = Math.floor(pcm.length / VAD_WINDOW_SAMPLES);
    expect(vad.droppedWindows).toBeGreaterThan(0);
    expect(vad.analysedWindows + vad.droppedWindows).toBe(windows);
    // What is left to analyse after the last push never exceeds ≈1 s (31 windows) plus the one in flight.
    expect(vad.analysedWindows).toBeLessThanOrEqual(Math.ceil(RATE / VAD_WINDOW_SAMPLES) + 1);
  });

  it('close() is idempotent, waits for the inference in flight, and silences the callbacks', async () => {
    const speech = sequence(0.5, await prompt('hello-world'));
    let calls = 0;
    const vad = await SileroVad.create({
      onSpeechStart: () => calls++,
      onSpeechStop: () => calls++,
    });
    vad.write(speech); // windows queued, one inference in flight
    await Promise.all([vad.close(), vad.close()]);
    await vad.close();
    const analysed = vad.analysedWindows;
    vad.write(speech);
    await vad.drained();
    await new Promise((resolve) => setImmediate(resolve));
    expect(vad.analysedWindows).toBe(analysed);
    expect(analysed).toBeLessThanOrEqual(1);
    expect(calls).toBe(0);
  });

  it('rejects nonsense parameters', async () => {
    await expect(SileroVad.create({ params: { stop_secs: -1 } })).rejects.toThrow(RangeError);
    await expect(SileroVad.create({ params: { confidence: Number.NaN } })).rejects.toThrow(RangeError);
  });
});
