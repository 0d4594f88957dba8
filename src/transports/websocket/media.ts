// A call's WebSocket media (SPEC §9): the pipeline's BotAudioSink, whose 16 kHz bot audio goes out one 20 ms frame
// per tick of the shared output clock; unlike Audiosocket, nothing is sent while the bot is silent (as in Pipecat).

import type { ClockSink, OutputClock } from '../../audio/clock.js';
import { OutputQueue } from '../../audio/output-queue.js';
import { HEADER_BYTES, kindForRate } from '../audiosocket/protocol.js';
import type { Metrics } from '../../metrics.js';
import type { BotAudioSink, PlaybackListener } from '../../pipeline/audio-sink.js';
import { PIPELINE_RATE } from '../../pipeline/voice-pipeline.js';
import type { CallMedia } from '../../calls/call.js';

/** Two minutes of bot audio: a reply longer than this loses its oldest frames (counted). */
const MAX_QUEUED_FRAMES = 6000;

/** Where the bot's frames go: the WebSocket peer, which encodes them and copes with a slow client. */
export interface BotAudioChannel {
  /** One 20 ms frame of s16le mono PCM at 16 kHz; the channel may drop it when its peer is congested. */
  sendAudio(pcm: Buffer): void;
  /** The call ended: close the connection. */
  close(): void;
}

export class WebSocketMedia implements CallMedia, BotAudioSink, ClockSink {
  readonly transport = 'websocket' as const;
  /**
   * The output side is always the pipeline's 16 kHz (SPEC §9), whatever the client sends: the pipeline resamples
   * TTS audio to this rate, while its input resampler works from `inputRate`.
   */
  readonly sampleRate = PIPELINE_RATE;
  /**
   * Reused for its bounded ring and drop-oldest policy. Its frames carry a 3-byte Audiosocket header (kind 0x12 =
   * 16 kHz) that is sliced off, without a copy, when a frame is sent.
   */
  private readonly queue = new OutputQueue(kindForRate(PIPELINE_RATE), MAX_QUEUED_FRAMES);
  /** The client's audio rate, fixed by its first audio frame (the pipeline's wire rate); null before that. */
  private rate: number | null = null;
  private unregister: (() => void) | null = null;
  private closed = false;
  private playing = false;
  private written = 0;
  private droppedReported = 0;
  private listener: PlaybackListener | null = null;

  constructor(
    private readonly channel: BotAudioChannel,
    private readonly clock: OutputClock,
    private readonly metrics: Metrics,
  ) {}

  get inputRate(): number | null {
    return this.rate;
  }

  get started(): boolean {
    return this.rate !== null;
  }

  get queuedFrames(): number {
    return this.queue.length;
  }

  get botFramesWritten(): number {
    return this.written;
  }

  /** Fixes the client's input rate and joins the shared clock. Called for the first client audio frame. */
  start(inputRate: number): void {
    if (this.rate !== null || this.closed) return;
    this.rate = inputRate;
    this.unregister = this.clock.register(this);
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

  /** One clock slot: at most one bot frame to the client. */
  tick(): void {
    const frame = this.queue.shift();
    if (frame !== undefined) {
      this.channel.sendAudio(frame.subarray(HEADER_BYTES));
      this.written++;
      if (!this.playing) {
        this.playing = true;
        this.listener?.playbackStarted();
      }
    } else if (this.playing) {
      this.playing = false;
      this.listener?.playbackStopped();
    }
    if (this.queue.dropped !== this.droppedReported) {
      this.metrics.droppedFramesTotal.inc(this.queue.dropped - this.droppedReported);
      this.droppedReported = this.queue.dropped;
    }
  }

  /** WebSocket has no "hand back to the dialplan": either way the socket is closed. Idempotent. */
  close(_handBack: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.listener = null;
    this.unregister?.();
    this.unregister = null;
    this.queue.clear();
    this.channel.close();
  }
}
