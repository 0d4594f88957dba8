// Processors and the pipeline that links them. A processor handles each frame synchronously and pushes frames
// down (towards the output) or up (towards the input); long work (LLM, TTS) runs in tasks the processor owns and
// pushes its results as they come. Synchronous delivery keeps order and makes an interruption take effect at once.

import { pollOutputClocks } from '../audio/clock.js';
import type { Direction, Frame } from './frames.js';

/** Frames one unlinked processor keeps (an end_call or an error, never a stream of audio). */
const MAX_EARLY_FRAMES = 16;

export abstract class FrameProcessor {
  /** Set by the Pipeline. */
  next: FrameProcessor | null = null;
  prev: FrameProcessor | null = null;
  /** Where frames leaving the ends of the pipeline go. */
  exit: ((frame: Frame, direction: Direction) => void) | null = null;

  /** Handles one frame. Frames a processor does not consume must be pushed on in the same direction. */
  abstract process(frame: Frame, direction: Direction): void;

  /** Frames pushed before a pipeline linked this processor (a provider that failed while the call was being built). */
  private early: Array<[Frame, Direction]> | null = null;

  push(frame: Frame, direction: Direction = 'down'): void {
    // Provider replies, transcripts and turns are handled in callbacks that can keep the loop busy for a while
    // under load: an output tick that fell due meanwhile goes out here instead of after them (see clock.ts).
    pollOutputClocks();
    const target = direction === 'down' ? this.next : this.prev;
    if (target !== null) target.process(frame, direction);
    else if (this.exit !== null) this.exit(frame, direction);
    else if ((this.early ??= []).length < MAX_EARLY_FRAMES) this.early.push([frame, direction]);
  }

  /** Delivers, in order, what was pushed before the pipeline linked this processor. */
  flushEarly(): void {
    const early = this.early;
    this.early = null;
    for (const [frame, direction] of early ?? []) this.push(frame, direction);
  }

  /** Releases what the processor opened. Idempotent. */
  close(): Promise<void> | void {
    return undefined;
  }
}

/** A chain of processors. Frames fed in enter at the top going down; frames leaving either end go to `exit`. */
export class Pipeline {
  private closed: Promise<void> | null = null;

  constructor(
    readonly processors: readonly FrameProcessor[],
    exit: (frame: Frame, direction: Direction) => void,
  ) {
    for (let i = 0; i < processors.length; i++) {
      const p = processors[i] as FrameProcessor;
      p.prev = processors[i - 1] ?? null;
      p.next = processors[i + 1] ?? null;
      p.exit = exit;
    }
    for (const p of processors) p.flushEarly();
  }

  /** Feeds a frame at the top, going down. */
  feed(frame: Frame): void {
    this.processors[0]?.process(frame, 'down');
  }

  /** Closes every processor, last to first. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      for (const p of [...this.processors].reverse()) await p.close();
    })();
    return this.closed;
  }
}
