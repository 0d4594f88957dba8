// SileroVad leaves the model out on long quiet stretches (windows under min_volume are non-speech whatever the
// model says): on real Asterisk prompts separated by digital silence and by noise floors under the gate, it must
// decide the same onsets, starts and stops as running the model on every window, and it must really skip.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prompt16k as prompt, whiteNoise } from '../helpers/prompts.js';
import { QUIET_MODEL_WINDOWS, QUIET_REPLAY_WINDOWS, SileroVad, VAD_WINDOW_SAMPLES } from '../../src/providers/vad/silero.js';

const RATE = 16000;
const CHUNK = 320;


const noise = whiteNoise;

/** Prompts with the floor under them and gaps of the floor between them (short and long), plus a long tail. */
function stream(prompts: Int16Array[], rms: number, gaps: number[]): Int16Array {
  const parts: Int16Array[] = [];
  let seed = 11;
  parts.push(noise(RATE / 2, rms, seed++));
  prompts.forEach((p, i) => {
    const floor = noise(p.length, rms, seed++);
    parts.push(Int16Array.from(p, (v, j) => Math.max(-32768, Math.min(32767, v + (floor[j] as number)))));
    parts.push(noise(Math.round((gaps[i % gaps.length] as number) * RATE), rms, seed++));
  });
  parts.push(noise(2 * RATE, rms, seed));
  const out = new Int16Array(parts.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of parts) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

interface Event {
  kind: 'onset' | 'dropped' | 'start' | 'stop';
  at: number;
}

async function decide(pcm: Int16Array, skipQuietWindows: boolean, minVolume?: number): Promise<{ events: Event[]; quiet: number; analysed: number; replayed: number }> {
  const events: Event[] = [];
  const vad = await SileroVad.create({
    skipQuietWindows,
    ...(minVolume !== undefined ? { params: { min_volume: minVolume } } : {}),
    onSpeechOnset: (at) => events.push({ kind: 'onset', at }),
    onOnsetDropped: (at) => events.push({ kind: 'dropped', at }),
    onSpeechStart: (at) => events.push({ kind: 'start', at }),
    onSpeechStop: (at) => events.push({ kind: 'stop', at }),
  });
  try {
    for (let i = 0; i < pcm.length; i += CHUNK) {
      vad.write(pcm.subarray(i, i + CHUNK));
      await vad.drained();
    }
    return { events, quiet: vad.quietWindows, analysed: vad.analysedWindows, replayed: vad.replayedWindows };
  } finally {
    await vad.close();
  }
}

describe('SileroVad on quiet stretches', () => {
  let prompts: Int16Array[] = [];
  beforeAll(async () => {
    await SileroVad.start({ workers: 0 });
    prompts = await Promise.all(['hello-world', 'tt-monkeys', 'auth-thankyou', 'vm-goodbye', 'agent-pass', 'conf-onlyperson'].map(prompt));
  });
  afterAll(async () => {
    await SileroVad.shutdown();
  });

  // Digital silence; −70 dBFS and −55 dBFS white noise (both under the default min_volume 0.6 ≈ −50 dBFS).
  for (const rms of [0, 10, 58]) {
    it(`decides as the model on every window does (floor RMS ${rms})`, async () => {
      const pcm = stream(prompts, rms, [0.3, 2.5, 0.8, 3]);
      const full = await decide(pcm, false);
      const gated = await decide(pcm, true);
      expect(full.quiet).toBe(0);
      expect(gated.analysed).toBe(full.analysed);
      // The long gaps are mostly left to the volume gate: at least 15 % of all windows skip the model.
      expect(gated.quiet).toBeGreaterThan(full.analysed * 0.15);
      expect(full.events.filter((e) => e.kind === 'stop').length).toBeGreaterThanOrEqual(4);
      expect(gated.events.map((e) => e.kind)).toEqual(full.events.map((e) => e.kind));
      // A resumed model may see the first loud window a hair differently: at most one window (32 ms) apart.
      gated.events.forEach((e, i) => {
        expect(Math.abs(e.at - (full.events[i] as Event).at), `${e.kind} #${i}`).toBeLessThanOrEqual(VAD_WINDOW_SAMPLES);
      });
    });
  }

  it('runs the model through the first half second of quiet, and on everything when min_volume is 0', async () => {
    const hello = prompts[0] as Int16Array;
    const pcm = new Int16Array(6 * RATE + hello.length);
    pcm.set(hello, 3 * RATE); // 3 s of digital silence, hello-world, 3 s of digital silence
    const gated = await decide(pcm, true);
    const full = await decide(pcm, false);
    const ungated = await decide(pcm, true, 0);
    expect(ungated.quiet).toBe(0);
    expect(full.events.map((e) => e.kind)).toEqual(['onset', 'start', 'stop']);
    // Two quiet stretches of ≈ 3 s (94 windows) each, plus the prompt's own quiet edges: each stretch models its
    // first QUIET_MODEL_WINDOWS, then skips (skipping everything quiet would be ≈ 190 windows).
    const quietWindows = Math.floor((6 * RATE) / VAD_WINDOW_SAMPLES);
    expect(gated.quiet).toBeLessThanOrEqual(quietWindows - 2 * QUIET_MODEL_WINDOWS + 8);
    expect(gated.quiet).toBeGreaterThan(quietWindows - 2 * QUIET_MODEL_WINDOWS - 12);
    expect(gated.events).toEqual(full.events);
    // One resumption (the prompt after the first stretch) re-runs the last skipped windows for the state.
    expect(gated.replayed).toBe(QUIET_REPLAY_WINDOWS);
  });

  it('an all-quiet stream needs no model run and still drains', async () => {
    const vad = await SileroVad.create({});
    try {
      const silence = new Int16Array(CHUNK);
      for (let i = 0; i < 200; i++) {
        vad.write(silence);
        await vad.drained();
      }
      expect(vad.analysedWindows).toBe(Math.floor((200 * CHUNK) / VAD_WINDOW_SAMPLES));
      expect(vad.quietWindows).toBe(vad.analysedWindows - QUIET_MODEL_WINDOWS);
      expect(vad.state).toBe('quiet');
    } finally {
      await vad.close();
    }
  });
});
