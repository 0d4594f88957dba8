// A call's Audiosocket media: the connection, its output queue at the wire rate, and its place on the shared
// 20 ms clock. Each tick writes exactly one frame: the next bot frame, or silence when the queue is empty. It is
// the pipeline's BotAudioSink and tells it when bot audio starts and stops on the wire.

import type { OutputClock } from '../../audio/clock.js';
import { OutputQueue, silenceFrame } from '../../audio/output-queue.js';
import type { AudiosocketConnection } from './connection.js';
import { rateOfKind } from './protocol.js';
import type { Metrics } from '../../metrics.js';
import type { BotAudioSink, PlaybackListener } from '../../pipeline/audio-sink.js';
import type { CallMedia } from '../../calls/call.js';

/** Two minutes of bot audio: a reply longer than this loses its oldest frames (counted). */
const MAX_QUEUED_FRAMES = 6000;

export class AudiosocketMedia implements CallMedia, BotAudioSink {
  readonly transport = 'audiosocket' as const;
  /** Created with the first inbound audio: the call's wire kind is the kind Asterisk sends (SPEC §2.2). */
  private queue: OutputQueue | null = null;
  private silence: Buffer | null = null;
  private unregister: (() => void) | null = null;
  private closed = false;
  private droppedReported = 0;
  private playing = false;
  private written = 0;
  private listener: PlaybackListener | null = null;

  constructor(
    readonly conn: AudiosocketConnection,
    private readonly clock: OutputClock,
    private readonly metrics: Metrics,
  ) {}

  get started(): boolean {
    return this.queue !== null;
  }

  get sampleRate(): number {
    return this.queue === null ? 0 : rateOfKind(this.queue.kind);
  }

  get queuedFrames(): number {
    return this.queue?.length ?? 0;
  }

  get botFramesWritten(): number {
    return this.written;
  }

  /** Fixes the wire kind and starts paced output. Called for the first inbound audio message. */
  start(kind: number): void {
    if (this.queue !== null || this.closed) return;
    this.queue = new OutputQueue(kind, MAX_QUEUED_FRAMES);
    this.silence = silenceFrame(kind);
    this.unregister = this.clock.register(this);
  }

  push(pcm: Buffer): void {
    this.queue?.pushPcm(pcm);
  }

  flush(): void {
    this.queue?.flushRemainder();
  }

  clear(): void {
    this.queue?.clear();
  }

  setPlaybackListener(listener: PlaybackListener | null): void {
    this.listener = listener;
  }

  /** One clock slot: one frame on the wire. */
  tick(): void {
    const queue = this.queue;
    if (queue === null || this.silence === null) return;
    const frame = queue.shift();
    this.conn.writeFrame(frame ?? this.silence);
    if (frame !== undefined) {
      this.written++;
      if (!this.playing) {
        this.playing = true;
        this.listener?.playbackStarted();
      }
    } else if (this.playing) {
      this.playing = false;
      this.listener?.playbackStopped();
    }
    if (queue.dropped !== this.droppedReported) {
      this.metrics.droppedFramesTotal.inc(queue.dropped - this.droppedReported);
      this.droppedReported = queue.dropped;
    }
  }

  close(handBack: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.listener = null;
    this.unregister?.();
    this.unregister = null;
    this.queue?.clear();
    if (handBack) this.conn.sendHangup();
    else this.conn.close();
  }
}
