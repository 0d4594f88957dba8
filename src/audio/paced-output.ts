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
  /** Puts the header into a bot frame's room without sending it: for a FrameStage. */
  prepare?(frame: Buffer, rate: number): void;
}

/**
 * Where a paced output can hand its frames to another thread that writes them on its own clock (audio/pacer): the
 * output stages a few frames ahead, and the stage writes one per slot, or its idle frame when none is staged.
 */
export interface FrameStage {
  /** False once the stage can take no more (its thread is gone): the output writes on its own again. */
  readonly usable: boolean;
  /** Frames that may be staged now. */
  room(): number;
  /** Frames staged and not yet taken for writing. */
  pending(): number;
  /** Whether a frame of this many bytes (header included) fits. */
  fits(frameBytes: number): boolean;
  put(frame: Buffer): void;
  /** Takes back every staged frame not yet taken, oldest first: none of them will be written. */
  retract(): Buffer[];
  /** The frame written on a slot with nothing staged; null writes nothing. */
  setIdle(frame: Buffer | null): void;
  /** Whether bot audio waits beyond what is staged (an empty slot is then a gap, and counted). */
  setMore(more: boolean): void;
  /** Reads what the stage's thread did since the last call. */
  sync(): void;
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
  /** Hand frames to this stage instead of writing them on the clock's tick (the writer must have prepare()). */
  stage?: FrameStage | null;
  /**
   * The output stopped using its stage (the stage's thread is gone, or frames at a new rate do not fit): release it
   * now, because this output writes on its own again from its next tick.
   */
  onStageLost?: () => void;
}

export class PacedOutput implements ClockSink {
  private queue: OutputQueue;
  private readonly writer: FrameWriter;
  private readonly onDropped: ((frames: number) => void) | undefined;
  private unregister: (() => void) | null = null;
  private listener: PlaybackListener | null = null;
  /** Bot audio is on the wire and the listener was told (staged: once the stage has taken a frame of the run). */
  private playing = false;
  /** Staged: botFramesWritten when the current run of bot frames began to be staged; null between runs. */
  private runStart: number | null = null;
  private written = 0;
  private droppedReported = 0;
  /** The last bot frame sent: it primes the converter on a rate change so the converted audio joins it smoothly. */
  private lastBotFrame: Buffer | null = null;
  private closed = false;
  /** A possible barge-in (issue 13): ticks send silence and keep the queue until unpaused. */
  private paused = false;
  /** Frames go to this stage's thread instead of being written here; null once it is lost. */
  private stage: FrameStage | null;
  private readonly onStageLost: (() => void) | undefined;

  constructor(options: PacedOutputOptions) {
    this.writer = options.writer;
    this.onDropped = options.onDropped;
    this.onStageLost = options.onStageLost;
    this.queue = new OutputQueue(options.rate, options.maxFrames, options.writer.headerBytes);
    this.stage = options.stage ?? null;
    if (this.stage !== null && this.writer.prepare === undefined) throw new TypeError('a staged output needs a writer with prepare()');
    this.stage?.setIdle(this.writer.silence(this.queue.rate));
  }

  /** Whether frames currently go through a stage (another thread writes them). */
  get staged(): boolean {
    return this.stage !== null;
  }

  /** The rate of the frames written: audio pushed must be at this rate. */
  get sampleRate(): number {
    return this.queue.rate;
  }

  /** Frames not yet written: queued here and staged. */
  get queuedFrames(): number {
    return this.queue.length + (this.stage?.pending() ?? 0);
  }

  get botFramesWritten(): number {
    return this.written - (this.stage?.pending() ?? 0);
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
    if (this.closed) return;
    this.queue.pushPcm(pcm);
    // Staged at once, so the thread can send it at its next slot instead of after our next tick.
    if (this.stage !== null && this.unregister !== null) this.fillStage(this.stage);
  }

  flush(): void {
    this.queue.flushRemainder();
    if (this.stage !== null && this.unregister !== null) this.fillStage(this.stage);
  }

  clear(): void {
    this.queue.clear();
    this.takeBackStaged(false);
  }

  setPlaybackListener(listener: PlaybackListener | null): void {
    this.listener = listener;
  }

  setPaused(paused: boolean): void {
    if (paused === this.paused) return;
    this.paused = paused;
    // Paused, the staged frames come back to the front of the queue: a false barge-in resumes exactly there.
    if (paused) this.takeBackStaged(true);
    else if (this.stage !== null && this.unregister !== null) this.fillStage(this.stage);
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
      this.takeBackStaged(true);
      const pcm = this.queue.drainPcm();
      const next = new OutputQueue(converter.toRate, this.queue.maxFrames, this.writer.headerBytes);
      if (pcm.length > 0) next.pushPcm(toBuffer(this.convert(converter, pcm)));
      this.lastBotFrame = null;
      this.queue = next;
      this.droppedReported = 0;
      // Frames too large for the stage (Audiosocket above 48 kHz) are written from this thread's clock instead.
      if (this.stage?.fits(this.writer.headerBytes + next.frameBytes) === true) this.stage.setIdle(this.writer.silence(next.rate));
      else if (this.stage !== null) this.dropStage();
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
    const stage = this.stage;
    if (stage !== null) {
      if (stage.usable) {
        this.stagedTick(stage);
        return;
      }
      this.dropStage();
    }
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
    this.reportDropped();
  }

  /** Leaves the clock and drops what is queued (and staged). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listener = null;
    this.unregister?.();
    this.unregister = null;
    this.queue.clear();
    this.stage?.setIdle(null);
    this.takeBackStaged(false);
  }

  /**
   * A tick while a stage writes the frames: top it up, and follow what it has played. Playback is announced once
   * the stage has taken the run's first frame (what "written" means for voice_to_voice), and stops once it has
   * taken the last one.
   */
  private stagedTick(stage: FrameStage): void {
    stage.sync();
    if (!this.paused) this.fillStage(stage);
    if (this.runStart === null) {
      this.reportDropped();
      return;
    }
    if (!this.playing && this.botFramesWritten > this.runStart) {
      this.playing = true;
      this.listener?.playbackStarted();
    }
    // As on the unstaged path: a pause with nothing left on the wire is a stop.
    if (stage.pending() === 0 && (this.paused || this.queue.length === 0)) {
      this.runStart = null;
      this.lastBotFrame = null;
      if (this.playing) {
        this.playing = false;
        this.listener?.playbackStopped();
      }
    }
    this.reportDropped();
  }

  private fillStage(stage: FrameStage): void {
    const queue = this.queue;
    const writer = this.writer;
    let room = stage.room();
    let frame: Buffer | undefined;
    while (room > 0 && !this.paused && (frame = queue.shift()) !== undefined) {
      writer.prepare?.(frame, queue.rate);
      this.runStart ??= this.written - stage.pending();
      stage.put(frame);
      this.lastBotFrame = frame;
      this.written++;
      room--;
    }
    stage.setMore(queue.length > 0 && !this.paused);
  }

  /** Staged frames not yet written come back: to the front of the queue (`keep`), or dropped. */
  private takeBackStaged(keep: boolean): void {
    if (this.stage === null) return;
    const frames = this.stage.retract();
    this.stage.setMore(false);
    this.written -= frames.length;
    if (keep && frames.length > 0) this.queue.unshiftFrames(frames);
    if (frames.length > 0) this.lastBotFrame = null;
  }

  /**
   * Back to writing on the clock's tick: what was staged and not written is queued again, and the owner is told
   * (it must take the socket back from the stage's thread before this output writes to it).
   */
  private dropStage(): void {
    this.takeBackStaged(true);
    this.stage = null;
    this.runStart = null;
    this.onStageLost?.();
  }

  private reportDropped(): void {
    const queue = this.queue;
    if (queue.dropped !== this.droppedReported) {
      this.onDropped?.(queue.dropped - this.droppedReported);
      this.droppedReported = queue.dropped;
    }
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
