// SileroVad batching: the windows of many calls run through the model together, and every call still gets the
// decisions it would get alone (the LSTM computes each batch row independently; each call keeps its own state).

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Resampler } from '../../src/audio/resampler.js';
import { readWav } from '../../src/audio/wav.js';
import { SileroVad } from '../../src/providers/vad/silero.js';

async function prompt(name: string): Promise<Int16Array> {
  const wav = readWav(readFileSync(`/usr/share/asterisk/sounds/en/${name}.wav`));
  const r = await Resampler.create(8000, 16000, 'sinc_fastest');
  const out = r.process(wav.samples);
  r.close();
  return out;
}

/** Silence, the prompt, silence: one short turn. */
function turn(speech: Int16Array, leadSeconds: number): Int16Array {
  const out = new Int16Array(Math.round(leadSeconds * 16000) + speech.length + 16000 * 2);
  out.set(speech, Math.round(leadSeconds * 16000));
  return out;
}

type Events = Array<{ kind: 'start' | 'stop'; at: number }>;

async function makeVad(events: Events): Promise<SileroVad> {
  return SileroVad.create({
    onSpeechStart: (at) => events.push({ kind: 'start', at }),
    onSpeechStop: (at) => events.push({ kind: 'stop', at }),
  });
}

describe('SileroVad batching', () => {
  it('12 calls analysed together decide exactly as each one alone, in batches', async () => {
    const names = ['hello-world', 'auth-thankyou', 'vm-password', 'vm-goodbye'];
    const streams = await Promise.all(Array.from({ length: 12 }, async (_, k) => turn(await prompt(names[k % 4] as string), 0.3 + 0.07 * k)));

    const alone: Events[] = [];
    for (const pcm of streams) {
      const events: Events = [];
      const vad = await makeVad(events);
      for (let i = 0; i + 320 <= pcm.length; i += 320) {
        vad.write(pcm.subarray(i, i + 320));
        await vad.drained();
      }
      await vad.close();
      alone.push(events);
    }

    const before = await SileroVad.batchStats();
    const together: Events[] = streams.map(() => []);
    const vads = await Promise.all(together.map((events) => makeVad(events)));
    const longest = Math.max(...streams.map((s) => s.length));
    for (let i = 0; i + 320 <= longest; i += 320) {
      streams.forEach((pcm, k) => {
        if (i + 320 <= pcm.length) vads[k]?.write(pcm.subarray(i, i + 320));
      });
      await Promise.all(vads.map((v) => v.drained()));
    }
    await Promise.all(vads.map((v) => v.close()));
    const after = await SileroVad.batchStats();

    expect(together).toEqual(alone);
    for (const events of alone) expect(events.map((e) => e.kind)).toEqual(['start', 'stop']);
    // Several windows per model run: the point of batching.
    const windows = (after?.windows ?? 0) - (before?.windows ?? 0);
    const batches = (after?.batches ?? 0) - (before?.batches ?? 0);
    expect(windows / batches).toBeGreaterThan(4);
  });
});
