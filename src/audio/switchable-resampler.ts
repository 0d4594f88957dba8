// The bot's outbound converter (TTS rate → output rate) for a call whose output rate can change once: when the
// caller's first audio fixes the wire kind, the converter is swapped at a chunk boundary. The old converter's
// held-back tail is handed back (at the old rate) so nothing is lost, and the new stream fades in over a few
// milliseconds because that tail was completed with zeros: a dip too short to hear instead of a step (a click).

import type { Resampler } from './resampler.js';

/** The fade-in after a swap: as long as the longest hold-back of the fast and medium qualities. */
const FADE_MS = 6;

export class SwitchableResampler {
  private fadeTotal = 0;
  private fadeDone = 0;
  private closed = false;

  constructor(private current: Resampler) {}

  get fromRate(): number {
    return this.current.fromRate;
  }

  get toRate(): number {
    return this.current.toRate;
  }

  process(input: Int16Array): Int16Array {
    const out = this.current.process(input);
    if (this.fadeDone >= this.fadeTotal) return out;
    // A passthrough converter hands back its input: fade a copy, never the caller's buffer.
    const faded = out === input ? Int16Array.from(out) : out;
    const n = Math.min(faded.length, this.fadeTotal - this.fadeDone);
    for (let i = 0; i < n; i++) {
      faded[i] = Math.round(((faded[i] as number) * (this.fadeDone + i)) / this.fadeTotal);
    }
    this.fadeDone += n;
    return faded;
  }

  /**
   * Continues with `next` (same input rate). Returns the old converter's held-back tail at the old output rate,
   * which the caller queues before switching its output; the old converter is closed.
   */
  swap(next: Resampler): Int16Array {
    if (this.closed) {
      next.close();
      return new Int16Array(0);
    }
    if (next.fromRate !== this.current.fromRate) {
      next.close();
      throw new RangeError(`the new converter takes ${next.fromRate} Hz, the stream is at ${this.current.fromRate} Hz`);
    }
    const old = this.current;
    const tail = old.passthrough ? new Int16Array(0) : old.flush();
    old.close();
    this.current = next;
    this.fadeTotal = tail.length > 0 ? Math.round((next.toRate * FADE_MS) / 1000) : 0;
    this.fadeDone = 0;
    return tail;
  }

  /** Idempotent. */
  close(): void {
    this.closed = true;
    this.current.close();
  }
}
