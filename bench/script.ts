// What every benchmark caller says: real recorded Asterisk prompts (8 kHz) with silence between them, as one
// deterministic stream of 20 ms frames. Because every call streams the same frames, the daemon's VAD decisions can
// be computed once, offline, with the daemon's own Resampler and SileroVad: that gives, for each turn, the frame
// at which "the user stopped speaking and stop_secs elapsed", the reference for the added-latency figure.

import { readFileSync } from 'node:fs';
import { Resampler } from '../src/audio/resampler.js';
import { readWav } from '../src/audio/wav.js';
import type { ResamplerQuality } from '../src/config.js';
import { DEFAULT_VAD_PARAMS, SileroVad } from '../src/providers/vad/silero.js';
import { vadLeadFor } from '../src/pipeline/voice-pipeline.js';

export const SOUNDS = '/usr/share/asterisk/sounds/en';
export const FRAME_SAMPLES = 160; // 20 ms at 8 kHz
export const FRAME_BYTES = FRAME_SAMPLES * 2;

/** Short single-utterance prompts (0.9–1.4 s) and what the fake STT "hears" in them. */
export const PROMPTS: ReadonlyArray<{ name: string; text: string }> = [
  { name: 'hello-world', text: 'Hello world.' },
  { name: 'auth-thankyou', text: 'Thank you.' },
  { name: 'vm-password', text: 'Password.' },
  { name: 'vm-goodbye', text: 'Goodbye.' },
];
/** Silence before the first prompt: the bot greets first (SPEC §3.4). */
export const LEAD_IN_MS = 1500;
/** Silence after each prompt: stop_secs (0.8 s) + the reply (≈ 0.15 s) + margin, so no turn barges in. */
export const GAP_MS = 2200;

export interface ScriptTurn {
  prompt: string;
  text: string;
  /** Frame index of the prompt's first and last frame. */
  firstFrame: number;
  lastFrame: number;
}

export interface VadTurn {
  /** 16 kHz stream position reported by the VAD (just after the deciding window). */
  startSample: number;
  stopSample: number;
  /** 8 kHz frame that carries the last sample of the window completing start_secs / stop_secs. */
  startFrame: number;
  stopFrame: number;
}

export interface CallScript {
  /** s16le 8 kHz, 320 bytes each. */
  frames: Buffer[];
  turns: ScriptTurn[];
}

function loadPrompt(name: string): Int16Array {
  const wav = readWav(readFileSync(`${SOUNDS}/${name}.wav`));
  if (wav.sampleRate !== 8000 || wav.channels !== 1) throw new Error(`${name}.wav is not 8 kHz mono`);
  return wav.samples;
}

/** The script, at least `seconds` long (whole prompt+gap cycles, then silence up to the length). */
export function buildScript(seconds: number): CallScript {
  const totalFrames = Math.ceil((seconds * 1000) / 20);
  const frames: Buffer[] = [];
  const turns: ScriptTurn[] = [];
  const silence = Buffer.alloc(FRAME_BYTES);
  const pushSilence = (ms: number): void => {
    for (let i = 0; i < ms / 20; i++) frames.push(silence);
  };
  const prompts = PROMPTS.map((p) => ({ ...p, samples: loadPrompt(p.name) }));
  pushSilence(LEAD_IN_MS);
  for (let k = 0; frames.length < totalFrames; k++) {
    const p = prompts[k % prompts.length];
    if (p === undefined) break;
    const firstFrame = frames.length;
    const bytes = Buffer.from(p.samples.buffer, p.samples.byteOffset, p.samples.byteLength);
    for (let off = 0; off < bytes.length; off += FRAME_BYTES) {
      const frame = Buffer.alloc(FRAME_BYTES);
      bytes.copy(frame, 0, off, Math.min(bytes.length, off + FRAME_BYTES));
      frames.push(frame);
    }
    turns.push({ prompt: p.name, text: p.text, firstFrame, lastFrame: frames.length - 1 });
    pushSilence(GAP_MS);
  }
  return { frames, turns };
}

/**
 * Runs frames through the daemon's input path offline — Resampler 8→16 kHz in 20 ms chunks, then SileroVad with
 * the default parameters (what an unknown Audiosocket call gets) — and returns each speech start/stop, as frame
 * indices into `frames`. The daemon's VAD stream starts at the first frame after its pipeline is up, so the
 * caller passes the script from that frame on: the window alignment, and so every decision, depends on it.
 */
export async function simulateVad(frames: readonly Buffer[], quality: ResamplerQuality, libsamplerate = false, skipQuietWindows = true): Promise<VadTurn[]> {
  const starts: number[] = [];
  const stops: number[] = [];
  const vad = await SileroVad.create({
    params: { ...DEFAULT_VAD_PARAMS },
    skipQuietWindows,
    onSpeechStart: (at) => starts.push(at),
    onSpeechStop: (at) => stops.push(at),
  });
  const up = await Resampler.create(8000, 16000, quality, { libsamplerate });
  // The daemon's VadProcessor leaves out the first `lead` samples of the stream (vadLeadSamples): so does this.
  const lead = vadLeadFor(up);
  let skip = lead;
  try {
    for (const frame of frames) {
      let out = up.process(new Int16Array(frame.buffer, frame.byteOffset, FRAME_SAMPLES));
      if (skip > 0) {
        const n = Math.min(skip, out.length);
        skip -= n;
        out = out.subarray(n);
      }
      if (out.length > 0) vad.write(out);
      await vad.drained();
    }
  } finally {
    up.close();
    await vad.close();
  }
  if (vad.droppedWindows > 0) throw new Error('offline VAD dropped windows');
  // The 8 kHz frame holding the last input sample of the deciding window (VAD position p → 16 kHz stream position
  // p + lead → 8 kHz sample (p + lead)/2 − 1).
  const frameOf = (p: number): number => Math.floor((Math.ceil((p + lead) / 2) - 1) / FRAME_SAMPLES);
  const turns: VadTurn[] = [];
  for (let i = 0; i < Math.min(starts.length, stops.length); i++) {
    const startSample = starts[i] as number;
    const stopSample = stops[i] as number;
    turns.push({ startSample, stopSample, startFrame: frameOf(startSample), stopFrame: frameOf(stopSample) });
  }
  return turns;
}

/** VAD turns of a stream that started at script frame `offset`, in script frame indices. */
export function shiftTurns(turns: readonly VadTurn[], offset: number): VadTurn[] {
  return turns.map((t) => ({ ...t, startFrame: t.startFrame + offset, stopFrame: t.stopFrame + offset }));
}

/**
 * Pairs each scripted prompt with the VAD turn around it. A prompt the VAD splits in two, or misses, has no pair:
 * its turn is left out of the latency figure (and counted).
 */
export function pairTurns(script: CallScript, vadTurns: VadTurn[]): Array<{ turn: ScriptTurn; vad: VadTurn } | { turn: ScriptTurn; vad: null }> {
  return script.turns.map((turn, k) => {
    const next = script.turns[k + 1];
    const inside = vadTurns.filter((v) => v.startFrame >= turn.firstFrame && v.startFrame <= turn.lastFrame + 1);
    const v = inside.length === 1 ? inside[0] : undefined;
    if (v === undefined || v.stopFrame <= turn.lastFrame || (next !== undefined && v.stopFrame >= next.firstFrame)) {
      return { turn, vad: null };
    }
    return { turn, vad: v };
  });
}
