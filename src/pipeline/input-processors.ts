// The input side of a call's pipeline: voice activity detection and speech-to-text on the 16 kHz caller audio.

import type { SttStream } from '../providers/types.js';
import type { Direction, Frame } from './frames.js';
import { FrameProcessor } from './processor.js';

/** What the VAD processor needs from a detector: audio in; it calls back speechStarted/speechStopped. */
export interface VoiceActivityDetector {
  write(pcm: Int16Array): void;
  close(): void;
}

/**
 * Samples to leave out at the start of the VAD's stream so that none of its windows ends inside the part of a
 * wire frame the input resampler still holds back. The resampler releases each 20 ms frame's last `holdBack`
 * samples only with the next frame; a window ending there waits 20 ms for it. Windows (512 samples) and frames
 * (320 samples at 16 kHz) only meet at 5 relative phases, 64 samples apart, so a shift of a few samples keeps
 * every window end clear of a hold-back shorter than 64 samples (sinc_fastest: 40). Without it one VAD decision in
 * five, the stop that ends a turn included, comes 20 ms late (test/unit/vad-lead.test.ts).
 * Returns 0 when no shift helps (no resampler, or a hold-back of 64 samples or more).
 */
export function vadLeadSamples(holdBack: number, frame = 320, window = 512): number {
  if (holdBack <= 0) return 0;
  let best = 0;
  let bestMargin = 0;
  for (let lead = 0; lead < frame; lead++) {
    // A window ending at stream position p (exclusive) is complete after its own frame iff its last sample's
    // place in that frame, e = ((p − 1) mod frame) + 1, is at most frame − holdBack.
    let margin = Number.POSITIVE_INFINITY;
    for (let m = 1; m <= frame; m++) {
      const e = ((((window * m + lead - 1) % frame) + frame) % frame) + 1;
      margin = Math.min(margin, frame - holdBack - e);
    }
    if (margin > bestMargin) {
      bestMargin = margin;
      best = lead;
    }
  }
  return best;
}

/** Runs the VAD on caller audio and turns its decisions into user_started/stopped_speaking frames. */
export class VadProcessor extends FrameProcessor {
  private detector: VoiceActivityDetector | null = null;
  /** Samples still to leave out at the start of the stream (see vadLeadSamples). */
  private skip: number;

  constructor(leadSamples = 0) {
    super();
    this.skip = leadSamples;
  }

  attach(detector: VoiceActivityDetector): void {
    this.detector = detector;
  }

  speechStarted(): void {
    this.push({ type: 'user_started_speaking' });
  }

  speechStopped(): void {
    this.push({ type: 'user_stopped_speaking' });
  }

  process(frame: Frame, direction: Direction): void {
    if (direction === 'down' && frame.type === 'audio_in') {
      let pcm = frame.pcm;
      if (this.skip > 0) {
        const n = Math.min(this.skip, pcm.length);
        this.skip -= n;
        pcm = pcm.subarray(n);
      }
      if (pcm.length > 0) this.detector?.write(pcm);
    }
    this.push(frame, direction);
  }

  override close(): void {
    this.detector?.close();
    this.detector = null;
  }
}

/**
 * Streams caller audio to the STT for the whole call and turns its results into transcription frames.
 *
 * Audio goes out in chunks of `chunkSamples` (16 kHz) rather than one message per 20 ms wire frame: every message
 * is a WebSocket frame and a socket write, the largest share of the main thread's time per call. Whatever is
 * buffered goes out at once when a VAD event passes (onset, pause, stop: the moments the STT's endpointing and
 * the turn wait for), before anything else reaches the STT, and on close, so the only delay is inside speech,
 * where interim results come at most one chunk later. `chunkSamples` ≤ one frame sends every frame as it comes.
 */
export class SttProcessor extends FrameProcessor {
  private stream: SttStream | null = null;
  private pending: Int16Array;
  private filled = 0;

  constructor(chunkSamples = 0) {
    super();
    this.pending = new Int16Array(Math.max(0, Math.floor(chunkSamples)));
  }

  attach(stream: SttStream): void {
    this.stream = stream;
  }

  transcript(text: string, final: boolean): void {
    this.push({ type: 'transcription', text, final });
  }

  failed(): void {
    this.push({ type: 'end_call', reason: 'stt_error' }, 'up');
  }

  process(frame: Frame, direction: Direction): void {
    if (direction === 'down' && frame.type === 'audio_in') {
      this.write(frame.pcm);
      return;
    }
    if (direction === 'down') this.flush();
    this.push(frame, direction);
  }

  /** Sends what is buffered. A new buffer follows: a stream may keep the chunk (a reconnect backlog, a queue). */
  flush(): void {
    if (this.filled === 0) return;
    const chunk = this.pending.subarray(0, this.filled);
    this.pending = new Int16Array(this.pending.length);
    this.filled = 0;
    this.stream?.write(chunk);
  }

  private write(pcm: Int16Array): void {
    const cap = this.pending.length;
    if (cap <= pcm.length && this.filled === 0) {
      this.stream?.write(pcm);
      return;
    }
    let i = 0;
    while (i < pcm.length) {
      const n = Math.min(cap - this.filled, pcm.length - i);
      this.pending.set(pcm.subarray(i, i + n), this.filled);
      this.filled += n;
      i += n;
      if (this.filled === cap) this.flush();
    }
  }

  override async close(): Promise<void> {
    this.flush();
    const s = this.stream;
    this.stream = null;
    await s?.close();
  }
}
