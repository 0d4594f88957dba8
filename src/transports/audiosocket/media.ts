// A call's Audiosocket media: the connection and its paced output on the shared 20 ms clock, from the moment the
// UUID is read (SPEC §2.2): 8 kHz 0x10 silence until there is something to say, since the AudioSocket
// application hangs up after 2 s with no frame either way. The output answers in the caller's kind once its first
// audio arrives; this writer puts the Audiosocket header on each frame as it is written.

import type { OutputClock } from '../../audio/clock.js';
import { RateFollowingPacedOutput, type FrameWriter } from '../../audio/paced-output.js';
import { frameBytes } from '../../audio/pcm.js';
import type { CallMedia } from '../../calls/ports.js';
import type { Metrics } from '../../metrics.js';
import type { AudiosocketConnection } from './connection.js';
import { HEADER_BYTES, KIND_AUDIO_8K, encodeMessage, kindForRate, rateOfKind } from './protocol.js';

/** Two minutes of bot audio: a reply longer than this loses its oldest frames (counted). */
const MAX_QUEUED_FRAMES = 6000;
/** What the AudioSocket application always sends, and so what the call speaks until the caller says otherwise. */
export const DEFAULT_WIRE_RATE = rateOfKind(KIND_AUDIO_8K);

const SILENCE = new Map<number, Buffer>();

/**
 * The encoded 20 ms silence frame of an audio kind, built once per kind and SHARED by every call: never mutate it
 * (Buffers cannot be frozen).
 */
export function silenceFrame(kind: number): Buffer {
  let frame = SILENCE.get(kind);
  if (frame === undefined) {
    frame = encodeMessage(kind, Buffer.alloc(frameBytes(rateOfKind(kind))));
    SILENCE.set(kind, frame);
  }
  return frame;
}

/** Puts the Audiosocket header on each paced frame; also used by `pipecat-control call dial` on its client. */
export class AudiosocketFrameWriter implements FrameWriter {
  readonly headerBytes = HEADER_BYTES;

  constructor(private readonly conn: Pick<AudiosocketConnection, 'writeFrame'>) {}

  write(frame: Buffer, rate: number, bot: boolean): void {
    if (bot) {
      // Header and payload in one write: Asterisk hangs up when a payload trails its header by 5 ms.
      frame[0] = kindForRate(rate);
      frame.writeUInt16BE(frame.length - HEADER_BYTES, 1);
    }
    this.conn.writeFrame(frame);
  }

  silence(rate: number): Buffer {
    return silenceFrame(kindForRate(rate));
  }
}

export class AudiosocketMedia implements CallMedia {
  readonly transport = 'audiosocket' as const;
  readonly expectedInputRate = DEFAULT_WIRE_RATE;
  readonly sink: RateFollowingPacedOutput;
  private closed = false;

  /** On the clock at once: the first frame goes out within one 20 ms slot. */
  constructor(
    readonly conn: AudiosocketConnection,
    clock: OutputClock,
    metrics: Metrics,
  ) {
    this.sink = new RateFollowingPacedOutput({
      rate: DEFAULT_WIRE_RATE,
      writer: new AudiosocketFrameWriter(conn),
      maxFrames: MAX_QUEUED_FRAMES,
      onDropped: (n) => metrics.droppedFramesTotal.inc(n),
    });
    this.sink.start(clock);
  }

  close(handBack: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.sink.close();
    if (handBack) this.conn.sendHangup();
    else this.conn.close();
  }
}
