// Recorded Asterisk prompts (8 kHz WAVs from asterisk-core-sounds-en-wav) at the pipeline's 16 kHz, through our
// own Resampler in one piece (flushed: the whole prompt, nothing held back).

import { readFileSync } from 'node:fs';
import { Resampler } from '../../src/audio/resampler.js';
import { readWav } from '../../src/audio/wav.js';

export const SOUNDS = '/usr/share/asterisk/sounds/en';

export async function prompt16k(name: string): Promise<Int16Array> {
  const wav = readWav(readFileSync(`${SOUNDS}/${name}.wav`));
  if (wav.sampleRate !== 8000) throw new Error(`${name}.wav is ${wav.sampleRate} Hz, not 8 kHz`);
  const r = await Resampler.create(8000, 16000, 'sinc_fastest');
  try {
    const head = r.process(wav.samples);
    const tail = r.flush();
    const out = new Int16Array(head.length + tail.length);
    out.set(head);
    out.set(tail, head.length);
    return out;
  } finally {
    r.close();
  }
}

/** Uniform white noise of the given RMS (in sample units), deterministic for a seed. */
export function whiteNoise(samples: number, rms: number, seed = 12345): Int16Array {
  const out = new Int16Array(samples);
  let s = seed;
  const amplitude = rms * Math.sqrt(3); // uniform noise on ±a has RMS a/√3
  for (let i = 0; i < samples; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = Math.round((s / 2147483648 - 0.5) * 2 * amplitude);
  }
  return out;
}
