// A call's bounded FIFO of outgoing 20 ms PCM frames at one rate. Transport-neutral: each frame is allocated with
// `headerBytes` of room in front of its PCM, so a transport can write its own header in place and send header and
// payload in one write with no allocation on the clock's tick (SPEC §2.4).

import { FRAME_MS, frameBytes } from './pcm.js';

export class OutputQueue {
  /** The sample rate of every frame in this queue. */
  readonly rate: number;
  readonly maxFrames: number;
  /** PCM bytes in one 20 ms frame at `rate`. */
  readonly frameBytes: number;
  /** Bytes reserved in front of each frame's PCM for a transport header. */
  readonly headerBytes: number;
  // Ring buffer: O(1) shift and drop-oldest, no array re-packing.
  private readonly ring: Array<Buffer | undefined>;
  private head = 0;
  private count = 0;
  private droppedFrames = 0;
  // PCM that did not fill a whole frame yet: carried into the next pushPcm.
  private readonly remainder: Buffer;
  private remainderBytes = 0;

  constructor(rate: number, maxFrames: number, headerBytes = 0) {
    if (!Number.isInteger(maxFrames) || maxFrames < 1) throw new RangeError('maxFrames must be a positive integer');
    if (!Number.isInteger(headerBytes) || headerBytes < 0) throw new RangeError('headerBytes must be a whole number');
    this.rate = rate;
    this.maxFrames = maxFrames;
    this.headerBytes = headerBytes;
    this.frameBytes = frameBytes(rate);
    this.ring = new Array<Buffer | undefined>(maxFrames).fill(undefined);
    this.remainder = Buffer.alloc(this.frameBytes);
  }

  /** Frames queued. */
  get length(): number {
    return this.count;
  }

  /** Audio queued, in milliseconds (the partial remainder not included). */
  get durationMs(): number {
    return this.count * FRAME_MS;
  }

  /** Frames dropped because the queue was full (oldest first); the caller maps it to metrics. */
  get dropped(): number {
    return this.droppedFrames;
  }

  /** Appends s16le PCM at `rate`, cut into exact 20 ms frames. Returns the number of frames queued. */
  pushPcm(pcm: Buffer): number {
    let offset = 0;
    let queued = 0;
    if (this.remainderBytes > 0) {
      const take = Math.min(pcm.length, this.frameBytes - this.remainderBytes);
      pcm.copy(this.remainder, this.remainderBytes, 0, take);
      this.remainderBytes += take;
      offset = take;
      if (this.remainderBytes < this.frameBytes) return 0;
      this.enqueue(this.remainder, 0);
      this.remainderBytes = 0;
      queued++;
    }
    while (pcm.length - offset >= this.frameBytes) {
      this.enqueue(pcm, offset);
      offset += this.frameBytes;
      queued++;
    }
    if (offset < pcm.length) {
      pcm.copy(this.remainder, 0, offset);
      this.remainderBytes = pcm.length - offset;
    }
    return queued;
  }

  /** Queues the partial last frame padded with silence (end of an utterance). Returns whether there was one. */
  flushRemainder(): boolean {
    if (this.remainderBytes === 0) return false;
    this.remainder.fill(0, this.remainderBytes);
    this.enqueue(this.remainder, 0);
    this.remainderBytes = 0;
    return true;
  }

  /**
   * The next frame (`headerBytes` of room, then the PCM), or undefined when empty. The frame is the caller's to
   * write its header into and send.
   */
  shift(): Buffer | undefined {
    if (this.count === 0) return undefined;
    const frame = this.ring[this.head];
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % this.maxFrames;
    this.count--;
    return frame;
  }

  /**
   * Takes everything queued, whole frames and the partial remainder, as one run of PCM (oldest first) and leaves
   * the queue empty: for re-queueing the same audio at another rate.
   */
  drainPcm(): Buffer {
    const out = Buffer.allocUnsafe(this.count * this.frameBytes + this.remainderBytes);
    let at = 0;
    for (let frame = this.shift(); frame !== undefined; frame = this.shift()) {
      frame.copy(out, at, this.headerBytes);
      at += this.frameBytes;
    }
    this.remainder.copy(out, at, 0, this.remainderBytes);
    this.remainderBytes = 0;
    this.head = 0;
    return out;
  }

  /**
   * Puts frames taken from this queue back at its front, oldest first (frames handed to a stage and taken back).
   * When they do not all fit, the newest queued frames make room, counted as dropped.
   */
  unshiftFrames(frames: Buffer[]): void {
    for (let i = frames.length - 1; i >= 0; i--) {
      const frame = frames[i] as Buffer;
      if (frame.length !== this.headerBytes + this.frameBytes) throw new RangeError(`a ${frame.length}-byte frame does not belong to this queue`);
      if (this.count === this.maxFrames) {
        this.ring[(this.head + this.count - 1) % this.maxFrames] = undefined;
        this.count--;
        this.droppedFrames++;
      }
      this.head = (this.head - 1 + this.maxFrames) % this.maxFrames;
      this.ring[this.head] = frame;
      this.count++;
    }
  }

  /** Barge-in: drops every queued frame and the remainder at once. Returns how many frames were dropped. */
  clear(): number {
    const dropped = this.count;
    for (let i = 0; i < this.count; i++) this.ring[(this.head + i) % this.maxFrames] = undefined;
    this.head = 0;
    this.count = 0;
    this.remainderBytes = 0;
    return dropped;
  }

  private enqueue(pcm: Buffer, offset: number): void {
    const frame = Buffer.allocUnsafe(this.headerBytes + this.frameBytes);
    pcm.copy(frame, this.headerBytes, offset, offset + this.frameBytes);
    if (this.count === this.maxFrames) {
      // Full: the oldest frame goes, so what plays is the most recent audio.
      this.head = (this.head + 1) % this.maxFrames;
      this.count--;
      this.droppedFrames++;
    }
    this.ring[(this.head + this.count) % this.maxFrames] = frame;
    this.count++;
  }
}
