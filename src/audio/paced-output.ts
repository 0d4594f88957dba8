// A call's paced output, transport-neutral (SPEC §2.4): bot PCM cut into 20 ms frames, one frame per tick of the
// shared clock. The transport supplies a FrameWriter that puts its own header into the room reserved in front of
// each frame and sends it; on ticks with nothing queued it may send silence (Audiosocket) or nothing (WebSocket).
// The output rate can change once the caller's rate is known: what is queued is converted, nothing is dropped.

import type { ClockSink, OutputClock } from './clock.js';
import { OutputQueue } from './output-queue.js';

/** Told when bot audio starts and stops on the wire: what "spoken" means for the conversation context. */
export interface PlaybackListener {
  /** The first bot frame after silence was written. */
  playbackStarted(): void;
  /** The queue ran dry: the last bot frame was written. */
  playbackStopped(): void;
}

export interface FrameWriter {
  /** Bytes the writer needs in front of each frame's PCM. */
  readonly headerBytes: number;
  /**
   * Sends one frame: `frame` is `headerBytes` of room followed by 20 ms of PCM at `rate`. `bot` is false for the
   * silence the writer asked for.
   */
  write(frame: Buffer, rate: number, bot: boolean): void;
  /** The frame to send on a tick with nothing queued (same layout, shared, never mutated), or null to send nothing. */
  silence(rate: number): Buffer | null;
}

/** Converts a run of s16 PCM from the output's old rate to its new one; called once per rate change. */
export interface QueueConverter {
  readonly fromRate: number;
  readonly toRate: number;
  process(input: Int16Array): Int16Array;
  /** The rest of the converted stream (the converter's held-back tail). */
  flush(): Int16Array;
  close(): void;
}

export interface PacedOutputOptions {
  rate: number;
  writer: FrameWriter;
  /** Queue bound in frames; a reply longer than this loses its oldest frames (counted). */
  maxFrames: number;
  /** Frames dropped because the queue was full, reported as they happen. */
  onDropped?: (frames: number) => void;
}

export class PacedOutput implements ClockSink {
  private queue: OutputQueue;
  private readonly writer: FrameWriter;
  private readonly onDropped: ((frames: number) => void) | undefined;
  private unregister: (() => void) | null = null;
  private listener: PlaybackListener | null = null;
  private playing = false;
  private written = 0;
  private droppedReported = 0;
  /** The last bot frame sent: it primes the converter on a rate change so the converted audio joins it smoothly. */
  private lastBotFrame: Buffer | null = null;
  private closed = false;
  /** A possible barge-in (issue 13): ticks send silence and keep the queue until unpaused. */
  private paused = false;

  constructor(options: PacedOutputOptions) {
    this.writer = options.writer;
    this.onDropped = options.onDropped;
    this.queue = new OutputQueue(options.rate, options.maxFrames, options.writer.headerBytes);
  }

  /** The rate of the frames written: audio pushed must be at this rate. */
  get sampleRate(): number {
    return this.queue.rate;
  }

  get queuedFrames(): number {
    return this.queue.length;
  }

  get botFramesWritten(): number {
    return this.written;
  }

  /** On the shared clock: ticks from the next slot on. */
  get started(): boolean {
    return this.unregister !== null;
  }

  /** Joins the shared clock; the first tick comes within one period. Idempotent. */
  start(clock: OutputClock): void {
    if (this.unregister !== null || this.closed) return;
    this.unregister = clock.register(this);
  }

  push(pcm: Buffer): void {
    if (!this.closed) this.queue.pushPcm(pcm);
  }

  flush(): void {
    this.queue.flushRemainder();
  }

  clear(): void {
    this.queue.clear();
  }

  setPlaybackListener(listener: PlaybackListener | null): void {
    this.listener = listener;
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
  }

  /**
   * Switches the output to `converter.toRate` between two ticks: the queued audio (and its partial last frame) is
   * converted and re-queued, so nothing is dropped and the next tick carries on where the last one stopped.
   * The converter is consumed (closed). Public on RateFollowingPacedOutput only.
   */
  protected convertTo(converter: QueueConverter): void {
    try {
      if (converter.fromRate !== this.queue.rate) {
        throw new RangeError(`the converter starts at ${converter.fromRate} Hz, the output is at ${this.queue.rate} Hz`);
      }
      if (converter.toRate === this.queue.rate || this.closed) return;
      const pcm = this.queue.drainPcm();
      const next = new OutputQueue(converter.toRate, this.queue.maxFrames, this.writer.headerBytes);
      if (pcm.length > 0) next.pushPcm(toBuffer(this.convert(converter, pcm)));
      this.lastBotFrame = null;
      this.queue = next;
      this.droppedReported = 0;
    } finally {
      converter.close();
    }
  }

  /** The bot frame sent at the latest tick (header room first, PCM from `offset`), or null: for level meters. */
  currentBotFrame(): { pcm: Buffer; offset: number } | null {
    return this.lastBotFrame === null ? null : { pcm: this.lastBotFrame, offset: this.writer.headerBytes };
  }

  /** One clock slot: one frame (or, for writers without silence, nothing when the bot is quiet). */
  tick(): void {
    const queue = this.queue;
    const frame = this.paused ? undefined : queue.shift();
    if (frame !== undefined) {
      this.writer.write(frame, queue.rate, true);
      this.lastBotFrame = frame;
      this.written++;
      if (!this.playing) {
        this.playing = true;
        this.listener?.playbackStarted();
      }
    } else {
      const silence = this.writer.silence(queue.rate);
      if (silence !== null) this.writer.write(silence, queue.rate, false);
      this.lastBotFrame = null;
      if (this.playing) {
        this.playing = false;
        this.listener?.playbackStopped();
      }
    }
    if (queue.dropped !== this.droppedReported) {
      this.onDropped?.(queue.dropped - this.droppedReported);
      this.droppedReported = queue.dropped;
    }
  }

  /** Leaves the clock and drops what is queued. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listener = null;
    this.unregister?.();
    this.unregister = null;
    this.queue.clear();
  }

  /**
   * Converts the queued run. The converter is primed with the last frame already sent, and the output for that
   * frame discarded, so the filter's history is the audio the caller heard (a fresh filter starts from zeros and
   * would put a dip at the join); the flush releases the held-back tail so the length is exact.
   */
  private convert(converter: QueueConverter, pcm: Buffer): Int16Array {
    const prime = this.lastBotFrame === null ? new Int16Array(0) : toInt16(this.lastBotFrame.subarray(this.writer.headerBytes));
    const parts = [converter.process(prime), converter.process(toInt16(pcm)), converter.flush()];
    const skip = Math.round((prime.length * converter.toRate) / converter.fromRate);
    const total = parts.reduce((n, p) => n + p.length, 0);
    const out = new Int16Array(Math.max(0, total - skip));
    let dropped = 0;
    let at = 0;
    for (const part of parts) {
      const from = Math.min(part.length, Math.max(0, skip - dropped));
      dropped += from;
      out.set(part.subarray(from), at);
      at += part.length - from;
    }
    return out;
  }
}

function toInt16(pcm: Buffer): Int16Array {
  if (pcm.byteOffset % 2 === 0) return new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length >> 1);
  const copy = new Int16Array(pcm.length >> 1);
  Buffer.from(copy.buffer).set(pcm.subarray(0, copy.length * 2));
  return copy;
}

function toBuffer(samples: Int16Array): Buffer {
  return Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
}

/** A paced output whose rate follows the caller's (Audiosocket answers in the kind it receives). */
export class RateFollowingPacedOutput extends PacedOutput {
  changeRate(converter: QueueConverter): void {
    this.convertTo(converter);
  }
}
