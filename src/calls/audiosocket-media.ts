// A call's Audiosocket media: the connection, its output queue at the wire rate, and its place on the shared
// 20 ms clock. Each tick writes exactly one frame: the next bot frame, or silence when the queue is empty.

import type { OutputClock } from '../audio/clock.js';
import { OutputQueue, silenceFrame } from '../audio/output-queue.js';
import type { AudiosocketConnection } from '../audiosocket/connection.js';
import type { Metrics } from '../metrics.js';
import type { CallMedia } from './call.js';

/** Two minutes of bot audio: a reply longer than this loses its oldest frames (counted). */
const MAX_QUEUED_FRAMES = 6000;

export class AudiosocketMedia implements CallMedia {
  readonly transport = 'audiosocket' as const;
  /** Created with the first inbound audio: the call's wire kind is the kind Asterisk sends (SPEC §2.2). */
  queue: OutputQueue | null = null;
  private silence: Buffer | null = null;
  private unregister: (() => void) | null = null;
  private closed = false;
  private droppedReported = 0;

  constructor(
    readonly conn: AudiosocketConnection,
    private readonly clock: OutputClock,
    private readonly metrics: Metrics,
  ) {}

  /** Fixes the wire kind and starts paced output. Called for the first inbound audio message. */
  start(kind: number): void {
    if (this.queue !== null || this.closed) return;
    this.queue = new OutputQueue(kind, MAX_QUEUED_FRAMES);
    this.silence = silenceFrame(kind);
    this.unregister = this.clock.register(this);
  }

  /** One clock slot: one frame on the wire. */
  tick(): void {
    const queue = this.queue;
    if (queue === null || this.silence === null) return;
    this.conn.writeFrame(queue.shift() ?? this.silence);
    if (queue.dropped !== this.droppedReported) {
      this.metrics.droppedFramesTotal.inc(queue.dropped - this.droppedReported);
      this.droppedReported = queue.dropped;
    }
  }

  close(handBack: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.unregister?.();
    this.unregister = null;
    this.queue?.clear();
    if (handBack) this.conn.sendHangup();
    else this.conn.close();
  }
}
