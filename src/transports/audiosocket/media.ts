// A call's Audiosocket media: the connection and its paced output on the shared 20 ms clock, from the moment the
// UUID is read (SPEC §2.2): 8 kHz 0x10 silence until there is something to say, since the AudioSocket
// application hangs up after 2 s with no frame either way. The output answers in the caller's kind once its first
// audio arrives; this writer puts the Audiosocket header on each frame as it is written. With a pacer the frames are
// staged for the pacing thread, which writes them to the socket on its own clock (audio/pacer/pacer.ts).

import type { OutputClock } from '../../audio/clock.js';
import { RateFollowingPacedOutput, type FrameWriter } from '../../audio/paced-output.js';
import type { Pacer, PacerSlot, SlotReporter } from '../../audio/pacer/pacer.js';
import { FRAME_MS, frameBytes } from '../../audio/pcm.js';
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
    // Header and payload in one write: Asterisk hangs up when a payload trails its header by 5 ms.
    if (bot) this.prepare(frame, rate);
    this.conn.writeFrame(frame);
  }

  prepare(frame: Buffer, rate: number): void {
    frame[0] = kindForRate(rate);
    frame.writeUInt16BE(frame.length - HEADER_BYTES, 1);
  }

  silence(rate: number): Buffer {
    return silenceFrame(kindForRate(rate));
  }
}

export class AudiosocketMedia implements CallMedia {
  readonly transport = 'audiosocket' as const;
  readonly expectedInputRate = DEFAULT_WIRE_RATE;
  readonly sink: RateFollowingPacedOutput;
  /** The pacing thread's slot while it writes this call's frames. */
  private slot: PacerSlot | null = null;
  private closed = false;

  /**
   * On the clock at once: the first frame goes out within one 20 ms slot. With a running `pacer`, the pacing
   * thread writes the frames (silence from its first slot) and the clock's ticks stage bot audio ahead of it.
   */
  constructor(
    readonly conn: AudiosocketConnection,
    clock: OutputClock,
    metrics: Metrics,
    pacer: Pacer | null = null,
  ) {
    const fd = pacer === null ? null : conn.descriptor;
    if (pacer !== null && fd !== null) {
      const reporter: SlotReporter = {
        written: (frames) => conn.countFramesOut(frames),
        dropped: (frames, blockedSlots) => conn.reportBlocked(frames, blockedSlots * FRAME_MS),
        underran: (slots) => metrics.outputUnderrunsTotal.inc(slots),
      };
      this.slot = pacer.open(fd, reporter, silenceFrame(KIND_AUDIO_8K));
      if (this.slot !== null) conn.beforeDescriptorCloses(() => this.releaseSlot());
    }
    this.sink = new RateFollowingPacedOutput({
      rate: DEFAULT_WIRE_RATE,
      writer: new AudiosocketFrameWriter(conn),
      maxFrames: MAX_QUEUED_FRAMES,
      onDropped: (n) => metrics.droppedFramesTotal.inc(n),
      stage: this.slot,
      onStageLost: () => this.releaseSlot(),
    });
    this.sink.start(clock);
  }

  /** Whether the pacing thread writes this call's frames. */
  get paced(): boolean {
    return this.slot !== null && this.sink.staged;
  }

  close(handBack: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.sink.close();
    // Before our own last bytes: the thread writes nothing more, and the tail of a frame it began goes first.
    this.releaseSlot();
    if (handBack) this.conn.sendHangup();
    else this.conn.close();
  }

  /** Takes the socket back from the pacing thread (idempotent); runs before the descriptor closes, on any path. */
  private releaseSlot(): void {
    const slot = this.slot;
    if (slot === null) return;
    this.slot = null;
    const tail = slot.release();
    slot.sync();
    if (tail !== null) this.conn.writeFrame(tail, true);
  }
}
