// A call's bounded FIFO of outgoing Audiosocket frames, each pre-encoded (header + 20 ms of PCM in one Buffer) so
// the shared clock's tick is one socket.write with no allocation (SPEC §2.4).

import { HEADER_BYTES, encodeMessage, rateOfKind } from '../transports/audiosocket/protocol.js';
import { FRAME_MS, frameBytes } from './pcm.js';

const SILENCE = new Map<number, Buffer>();

/**
 * The encoded 20 ms silence frame of an audio kind, built once per kind and SHARED by every call: never mutate it
 * (Buffers cannot be frozen). Sent on every tick where the queue is empty, which also keeps Asterisk's 2 s
 * no-audio timeout from firing.
 */
export function silenceFrame(kind: number): Buffer {
  let frame = SILENCE.get(kind);
  if (frame === undefined) {
    frame = encodeMessage(kind, Buffer.alloc(frameBytes(rateOfKind(kind))));
    SILENCE.set(kind, frame);
  }
  return frame;
}

export class OutputQueue {
  /** The audio kind (and so the rate) of every frame in this queue. */
  readonly kind: number;
  readonly maxFrames: number;
  /** PCM bytes in one 20 ms frame at the wire rate. */
  readonly frameBytes: number;
  // Ring buffer: O(1) shift and drop-oldest, no array re-packing.
  private readonly ring: Array<Buffer | undefined>;
  private head = 0;
  private count = 0;
  private droppedFrames = 0;
  // PCM that did not fill a whole frame yet: carried into the next pushPcm.
  private readonly remainder: Buffer;
  private remainderBytes = 0;

  constructor(kind: number, maxFrames: number) {
    if (!Number.isInteger(maxFrames) || maxFrames < 1) throw new RangeError('maxFrames must be a positive integer');
    this.kind = kind;
    this.maxFrames = maxFrames;
    this.frameBytes = frameBytes(rateOfKind(kind));
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

  /** Appends s16le PCM at the wire rate, cut into exact 20 ms frames. Returns the number of frames queued. */
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

  /** The next encoded frame, or undefined when empty (the caller sends silenceFrame(kind)). */
  shift(): Buffer | undefined {
    if (this.count === 0) return undefined;
    const frame = this.ring[this.head];
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % this.maxFrames;
    this.count--;
    return frame;
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
    const frame = Buffer.allocUnsafe(HEADER_BYTES + this.frameBytes);
    frame[0] = this.kind;
    frame.writeUInt16BE(this.frameBytes, 1);
    pcm.copy(frame, HEADER_BYTES, offset, offset + this.frameBytes);
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
