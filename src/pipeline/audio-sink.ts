// Where a pipeline's bot audio goes: the call's paced output (Audiosocket or WebSocket media). The sink tells the
// pipeline when bot audio starts and stops on the wire, which is what "spoken" means for the context.

export interface PlaybackListener {
  /** The first bot frame after silence was written to the wire. */
  playbackStarted(): void;
  /** The output queue ran dry: the last bot frame was written. */
  playbackStopped(): void;
}

export interface BotAudioSink {
  /** The wire rate: audio pushed must be s16le mono at this rate. */
  readonly sampleRate: number;
  /** Queues bot audio (any length; the sink cuts it into 20 ms frames). */
  push(pcm: Buffer): void;
  /** Pads and queues a trailing partial frame: the end of a reply. */
  flush(): void;
  /** Barge-in: drops everything queued; the next tick sends silence. */
  clear(): void;
  /** Frames queued and not yet written. */
  readonly queuedFrames: number;
  /** Bot (non-silence) frames written since the call started. */
  readonly botFramesWritten: number;
  setPlaybackListener(listener: PlaybackListener | null): void;
}
