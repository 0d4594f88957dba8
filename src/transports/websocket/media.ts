// A call's WebSocket media (SPEC §9): the pipeline's 16 kHz bot audio goes out one 20 ms frame per tick of the
// shared output clock; unlike Audiosocket, nothing is sent while the bot is silent (as in Pipecat), and the output
// rate stays 16 kHz whatever the client sends.

import type { OutputClock } from '../../audio/clock.js';
import { PacedOutput, type FrameWriter } from '../../audio/paced-output.js';
import type { CallMedia } from '../../calls/ports.js';
import type { Metrics } from '../../metrics.js';
import { PIPELINE_RATE } from '../../pipeline/voice-pipeline.js';

/** Two minutes of bot audio: a reply longer than this loses its oldest frames (counted). */
const MAX_QUEUED_FRAMES = 6000;

/** Where the bot's frames go: the WebSocket peer, which encodes them and copes with a slow client. */
export interface BotAudioChannel {
  /** One 20 ms frame of s16le mono PCM at 16 kHz; the channel may drop it when its peer is congested. */
  sendAudio(pcm: Buffer): void;
  /** The call ended: close the connection. */
  close(): void;
}

class ChannelWriter implements FrameWriter {
  readonly headerBytes = 0;

  constructor(private readonly channel: BotAudioChannel) {}

  write(frame: Buffer): void {
    this.channel.sendAudio(frame);
  }

  silence(): null {
    return null;
  }
}

export class WebSocketMedia implements CallMedia {
  readonly transport = 'websocket' as const;
  /** Clients send what they like (the first frame says); nothing is prepared before it. */
  readonly expectedInputRate = null;
  readonly sink: PacedOutput;
  private closed = false;

  /** Joins the shared clock at once, like every media. */
  constructor(
    private readonly channel: BotAudioChannel,
    clock: OutputClock,
    metrics: Metrics,
  ) {
    this.sink = new PacedOutput({
      rate: PIPELINE_RATE,
      writer: new ChannelWriter(channel),
      maxFrames: MAX_QUEUED_FRAMES,
      onDropped: (n) => metrics.droppedFramesTotal.inc(n),
    });
    this.sink.start(clock);
  }

  /** WebSocket has no "hand back to the dialplan": either way the socket is closed. Idempotent. */
  close(_handBack: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.sink.close();
    this.channel.close();
  }
}
