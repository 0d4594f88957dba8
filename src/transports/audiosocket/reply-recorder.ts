// Records the audio a client receives and measures its pacing the way SPEC §14 defines it: each frame against
// the call's ideal 20 ms grid, anchored at the first received frame (`call dial`'s frames_late, the benchmark).

import { FRAME_MS, pcmDurationMs } from '../../audio/pcm.js';
import { isAudioKind, rateOfKind } from './protocol.js';

export interface ReplyStats {
  frames: number;
  /** Milliseconds of audio received (from the byte count at each frame's rate). */
  receivedMs: number;
  /** Frames more than `lateThresholdMs` (10) behind their slot. */
  framesLate: number;
  maxLatenessMs: number;
  p50LatenessMs: number;
  p99LatenessMs: number;
  /** performance.now() of the first audio frame, or undefined when none arrived. */
  firstFrameAt: number | undefined;
}

export interface ReplyRecorderOptions {
  lateThresholdMs?: number;
  /** Keep the received PCM for audio() (default true). */
  keepAudio?: boolean;
}

export class ReplyRecorder {
  private readonly lateThresholdMs: number;
  private readonly keepAudio: boolean;
  private readonly chunks: Buffer[] = [];
  private readonly lateness: number[] = [];
  private firstAt: number | undefined;
  private receivedMs = 0;

  constructor(options: ReplyRecorderOptions = {}) {
    this.lateThresholdMs = options.lateThresholdMs ?? 10;
    this.keepAudio = options.keepAudio ?? true;
  }

  /** Adds one received message; non-audio kinds are ignored. Returns whether it was recorded. */
  add(kind: number, payload: Buffer, receivedAt: number): boolean {
    if (!isAudioKind(kind)) return false;
    // Slot i sits at t0 + 20·i: the slot index advances by one per received frame.
    this.firstAt ??= receivedAt;
    this.lateness.push(receivedAt - (this.firstAt + this.lateness.length * FRAME_MS));
    this.receivedMs += pcmDurationMs(payload.length, rateOfKind(kind));
    if (this.keepAudio) this.chunks.push(payload);
    return true;
  }

  /** Every received audio payload, concatenated (s16le at the wire rate). */
  audio(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Per-frame lateness in ms, in arrival order (negative = ahead of its slot). */
  latenesses(): readonly number[] {
    return this.lateness;
  }

  stats(): ReplyStats {
    const sorted = Float64Array.from(this.lateness).sort();
    let late = 0;
    for (const l of this.lateness) if (l > this.lateThresholdMs) late++;
    return {
      frames: this.lateness.length,
      receivedMs: this.receivedMs,
      framesLate: late,
      maxLatenessMs: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : 0,
      p50LatenessMs: quantile(sorted, 0.5),
      p99LatenessMs: quantile(sorted, 0.99),
      firstFrameAt: this.firstAt,
    };
  }
}

/** Nearest-rank quantile of sorted values; 0 when empty. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}
