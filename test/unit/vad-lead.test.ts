// The VAD's lead: shifting the VAD stream by a few samples keeps every 32 ms window clear of the samples the 8→16 kHz
// resampler holds back at the end of each 20 ms frame, so no VAD decision waits a frame for them.

import { describe, expect, it } from 'vitest';
import { RESAMPLER_HOLD_BACK_MS, Resampler } from '../../src/audio/resampler.js';
import { VadProcessor, vadLeadSamples } from '../../src/pipeline/input-processors.js';
import type { Frame } from '../../src/pipeline/frames.js';
import { vadLeadFor } from '../../src/pipeline/voice-pipeline.js';

/**
 * Feeds 20 ms frames of 8 kHz audio through the resampler and returns, for every 512-sample window of the
 * stream after `lead`, whether it was complete once the frame holding its last input sample had been resampled.
 */
async function windowsCompleteInTheirFrame(lead: number, seconds: number): Promise<{ windows: number; late: number }> {
  const up = await Resampler.create(8000, 16000, 'sinc_fastest');
  let produced = 0;
  const completeAfterFrame: number[] = []; // output samples available after frame k
  for (let k = 0; k < seconds * 50; k++) {
    produced += up.process(new Int16Array(160).fill(100)).length;
    completeAfterFrame.push(produced);
  }
  up.close();
  let windows = 0;
  let late = 0;
  for (let end = lead + 512; end <= (completeAfterFrame.at(-1) ?? 0); end += 512) {
    windows++;
    const frameOfLastSample = Math.floor((Math.ceil(end / 2) - 1) / 160);
    if ((completeAfterFrame[frameOfLastSample] ?? 0) < end) late++;
  }
  return { windows, late };
}

describe('VAD lead', () => {
  it('keeps every window of an 8 kHz call clear of the sinc_fastest hold-back', async () => {
    const holdBack = Math.round(RESAMPLER_HOLD_BACK_MS.sinc_fastest * 16);
    const lead = vadLeadSamples(holdBack);
    expect(lead).toBeGreaterThanOrEqual(0);
    expect(lead).toBeLessThan(320);
    const without = await windowsCompleteInTheirFrame(0, 10);
    const withLead = await windowsCompleteInTheirFrame(lead, 10);
    // Without the lead one window in five ends inside the held-back tail of its frame.
    expect(without.late / without.windows).toBeGreaterThan(0.15);
    expect(withLead.late).toBe(0);
    const r = await Resampler.create(8000, 16000, 'sinc_fastest');
    expect(vadLeadFor(r)).toBe(lead);
    r.close();
  });

  it('is 0 where no shift can help: no resampler, or a hold-back of 64 samples or more', async () => {
    expect(vadLeadSamples(0)).toBe(0);
    expect(vadLeadSamples(94)).toBe(0); // sinc_medium
    expect(vadLeadSamples(288)).toBe(0); // sinc_best
    const passthrough = await Resampler.create(16000, 16000, 'sinc_fastest');
    expect(vadLeadFor(passthrough)).toBe(0);
    passthrough.close();
    expect(vadLeadFor(null)).toBe(0);
  });

  it('VadProcessor leaves exactly the lead out of what the detector sees, and passes every frame on', () => {
    const seen: number[] = [];
    const proc = new VadProcessor(5);
    proc.attach({ write: (pcm) => seen.push(...pcm), close: () => undefined });
    const out: Frame[] = [];
    proc.exit = (f) => out.push(f);
    for (const chunk of [[1, 2, 3], [4, 5, 6, 7], [8, 9]]) proc.process({ type: 'audio_in', pcm: Int16Array.from(chunk) }, 'down');
    expect(seen).toEqual([6, 7, 8, 9]);
    expect(out.length).toBe(3);
  });
});
