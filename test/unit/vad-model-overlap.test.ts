// One SileroModel, batches that overlap in time: a DSP worker takes each batch message as it arrives, so a second
// batch may be handed to the model while the first one is still running inside onnxruntime. Each batch must come
// out exactly as it would alone — speech decisions must depend on the audio, never on the load.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Resampler } from '../../src/audio/resampler.js';
import { readWav } from '../../src/audio/wav.js';
import { STATE_SIZE, SileroModel, VAD_WINDOW_SAMPLES } from '../../src/providers/vad/silero-model.js';

interface Batch {
  windows: Float32Array;
  states: Float32Array;
  counts: Int32Array;
  jobs: number;
  probabilities: Float32Array;
}

let speech: Float32Array;
let model: SileroModel;

beforeAll(async () => {
  const wav = readWav(readFileSync('/usr/share/asterisk/sounds/en/tt-monkeys.wav'));
  const up = await Resampler.create(8000, 16000, 'sinc_fastest');
  const pcm = up.process(wav.samples);
  up.close();
  speech = Float32Array.from(pcm, (s) => s / 32768);
  model = await SileroModel.load();
});

afterAll(async () => {
  await model.close();
});

/** `jobs` calls with 1–4 windows each, cut from different places of the recording, fresh (zero) states. */
function batch(jobs: number, seed: number): Batch {
  const counts = Int32Array.from({ length: jobs }, (_, j) => 1 + ((j + seed) % 4));
  const total = counts.reduce((n, c) => n + c, 0);
  const windows = new Float32Array(total * VAD_WINDOW_SAMPLES);
  for (let w = 0; w < total; w++) {
    const from = ((seed * 37 + w * 11) % Math.floor(speech.length / VAD_WINDOW_SAMPLES - 1)) * VAD_WINDOW_SAMPLES;
    windows.set(speech.subarray(from, from + VAD_WINDOW_SAMPLES), w * VAD_WINDOW_SAMPLES);
  }
  return { windows, states: new Float32Array(jobs * STATE_SIZE), counts, jobs, probabilities: new Float32Array(total) };
}

const copy = (b: Batch): Batch => ({
  windows: b.windows.slice(),
  states: b.states.slice(),
  counts: b.counts.slice(),
  jobs: b.jobs,
  probabilities: new Float32Array(b.probabilities.length),
});

const runBatch = (b: Batch): Promise<number> => model.runSteps(b.windows, b.states, b.counts, b.jobs, b.probabilities);

describe('SileroModel with overlapping batches', () => {
  it('gives every batch the probabilities and states it gets when run alone', async () => {
    const batches = [batch(24, 1), batch(7, 2), batch(31, 3), batch(1, 4), batch(16, 5)];
    const alone = batches.map(copy);
    for (const b of alone) await runBatch(b);

    const together = batches.map(copy);
    // All handed over in the same turn of the event loop, as a worker receiving several messages would.
    await Promise.all(together.map(runBatch));

    together.forEach((b, i) => {
      const ref = alone[i] as Batch;
      expect(Array.from(b.probabilities)).toEqual(Array.from(ref.probabilities));
      expect(Array.from(b.states)).toEqual(Array.from(ref.states));
    });
    // Real, varied outputs: the comparison is not between arrays of zeros or of one repeated value.
    expect(new Set(alone.flatMap((b) => Array.from(b.probabilities))).size).toBeGreaterThan(50);
  });
});
