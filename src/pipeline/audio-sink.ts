// Where a pipeline's bot audio goes: the call's paced output (audio/paced-output.ts, under Audiosocket or
// WebSocket). The sink tells the pipeline when bot audio starts and stops on the wire, which is what "spoken"
// means for the context.

import type { PlaybackListener, QueueConverter } from '../audio/paced-output.js';

export type { PlaybackListener, QueueConverter };

export interface BotAudioSink {
  /** The output rate: audio pushed must be s16le mono at this rate. */
  readonly sampleRate: number;
  /** Queues bot audio (any length; the sink cuts it into 20 ms frames). */
  push(pcm: Buffer): void;
  /** Pads and queues a trailing partial frame: the end of a reply. */
  flush(): void;
  /** Barge-in: drops everything queued; the next tick sends silence. */
  clear(): void;
  /**
   * A possible barge-in: while paused, ticks send silence and keep the queue (pushes still queue); unpaused,
   * output goes on with the next queued frame, so nothing is lost or repeated.
   */
  setPaused(paused: boolean): void;
  /** Frames queued and not yet written. */
  readonly queuedFrames: number;
  /** Bot (non-silence) frames written since the call started. */
  readonly botFramesWritten: number;
  setPlaybackListener(listener: PlaybackListener | null): void;
  /** The bot frame written at the latest tick (its PCM from `offset`), or null when that tick sent none. */
  currentBotFrame?(): { pcm: Buffer; offset: number } | null;
  /**
   * Present when the output follows the caller's rate (Audiosocket answers in the kind it receives): switches to
   * `converter.toRate`, converting what is queued. Absent when the output rate is fixed (WebSocket: 16 kHz).
   */
  changeRate?(converter: QueueConverter): void;
}
