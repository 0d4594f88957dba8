// Driving one live STT stream in a test: open it through a provider with recording callbacks, feed it 20 ms frames
// of 16 kHz audio the way a call does, and count the process's active handles to prove a close left nothing behind.

import { pino } from 'pino';

import type { SttProvider, SttStream, SttTranscript } from '../../src/providers/types.js';

export const FRAME = 320; // 20 ms at 16 kHz
export const FRAME_BYTES = FRAME * 2;
const log = pino({ level: 'silent' });

export interface SttHarness {
  stream: SttStream;
  transcripts: SttTranscript[];
  errors: Error[];
  fatals: Error[];
  controller: AbortController;
}

export async function openStt(provider: SttProvider, language: string, opened: SttStream[]): Promise<SttHarness> {
  const transcripts: SttTranscript[] = [];
  const errors: Error[] = [];
  const fatals: Error[] = [];
  const controller = new AbortController();
  const stream = await provider.open({
    language,
    signal: controller.signal,
    log,
    onTranscript: (t) => transcripts.push(t),
    onFatal: (e) => fatals.push(e),
    onError: (e) => errors.push(e),
  });
  opened.push(stream);
  return { stream, transcripts, errors, fatals, controller };
}

/** A 20 ms frame of a quiet 440 Hz tone (the fakes do not listen; the bytes only have to be 16 kHz s16le). */
export function frame(): Int16Array {
  const f = new Int16Array(FRAME);
  for (let i = 0; i < FRAME; i++) f[i] = Math.round(1000 * Math.sin((2 * Math.PI * 440 * i) / 16_000));
  return f;
}

/** Writes `count` frames, yielding to the event loop between frames so socket events interleave as in a call. */
export async function feed(stream: SttStream, count: number): Promise<void> {
  const f = frame();
  for (let i = 0; i < count; i++) {
    stream.write(f);
    await new Promise((r) => setImmediate(r));
  }
}

/** How many more of each resource type (sockets, timers, …) are active now than in `before`. */
export function extraHandles(before: string[]): Record<string, number> {
  const count = (list: string[]): Map<string, number> => {
    const m = new Map<string, number>();
    for (const t of list) m.set(t, (m.get(t) ?? 0) + 1);
    return m;
  };
  const was = count(before);
  const out: Record<string, number> = {};
  for (const [t, n] of count(process.getActiveResourcesInfo())) if (n > (was.get(t) ?? 0)) out[t] = n - (was.get(t) ?? 0);
  return out;
}
