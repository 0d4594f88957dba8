// The main thread's side of the pacing thread (layout.ts, pacer-thread.ts). A Pacer owns the thread; each
// Audiosocket call opens a PacerSlot on its socket's descriptor. The call's PacedOutput stages its next few frames
// into the slot (FrameStage), and the thread writes one every 20 ms on its own clock, an idle (silence) frame when
// nothing is staged. Closing the call releases the slot before the socket closes.

import { Worker } from 'node:worker_threads';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { Logger } from '../../log.js';
import type { FrameStage } from '../paced-output.js';
import { FRAME_MS } from '../pcm.js';
import {
  ACTIVE,
  CONTROL_INTS,
  C_LATE_COUNT,
  C_SKIPPED,
  C_SLOTS,
  C_STOP,
  C_TICKS,
  C_WAKE,
  ENTRY_BYTES,
  H_BLOCKED,
  H_DROPPED,
  H_IDLE_LEN,
  H_LEN0,
  H_MORE,
  H_READ,
  H_REM_LEN,
  H_STATE,
  H_UNDERRUNS,
  H_WRITE,
  H_WRITTEN,
  HEADER_INTS,
  LATE_RING,
  MAX_LEAD_FRAMES,
  RELEASED,
  WRITING,
  blockBytes,
  entryOffset,
  idleOffset,
  remainderOffset,
  type OpenSlot,
  type PacerThreadData,
} from './layout.js';

/** The largest frame a slot carries (header included); a call with bigger frames is paced on the main thread. */
export const MAX_STAGED_FRAME_BYTES = ENTRY_BYTES;

export interface PacerOptions {
  /** How far ahead of the wire the main thread stages bot audio; the main thread may stall this long unheard. */
  leadMs: number;
  /** Nice value of the thread (Linux, per thread); below 0 needs CAP_SYS_NICE and is skipped without it. */
  nice?: number;
  log?: Logger;
  /** Lateness of each of the thread's ticks (ms), handed over on the main thread once a second. */
  onLateness?: (ms: number) => void;
  /** The thread died: every slot reports `usable` false and its call goes back to main-thread pacing. */
  onExit?: (detail: string) => void;
}

/** Told what the pacing thread did for a slot; each is called from sync() on the main thread, only for news. */
export interface SlotReporter {
  /** Frames fully handed to the kernel (staged and idle). */
  written(frames: number): void;
  /**
   * Frames not written because the socket's buffer was full (may be 0 when only the run changed), and the slots in
   * a row up to now on which the socket took nothing (0: it takes frames again).
   */
  dropped(frames: number, blockedSlots: number): void;
  /** Slots that found nothing staged while bot audio was waiting on the main thread: a gap the caller heard. */
  underran(slots: number): void;
}

function startThread(data: PacerThreadData): Worker {
  const options = { workerData: data, transferList: [data.port] };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./pacer-thread.js', import.meta.url), options);
  // Run from sources (tsx, Vitest): register tsx's loader inside the thread first (see silero-worker-shard.ts).
  const script = new URL('./pacer-thread.ts', import.meta.url).href;
  return new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(script)}); });`, {
    ...options,
    eval: true,
  });
}

export class Pacer {
  readonly leadFrames: number;
  private readonly control = new Int32Array(new SharedArrayBuffer(CONTROL_INTS * 4));
  private readonly lateness = new Float64Array(new SharedArrayBuffer(LATE_RING * 8));
  private readonly port: MessagePort;
  private readonly worker: Worker;
  private readonly onLateness: ((ms: number) => void) | undefined;
  private lateSeen = 0;
  /**
   * Resolves true once the thread runs its loop (a slot opened before then waits for it: at startup, loading the
   * thread takes tens of milliseconds), false if it exited first.
   */
  readonly ready: Promise<boolean>;
  private readonly drainTimer: NodeJS.Timeout | undefined;
  private alive = true;
  private stopping = false;
  private readonly exited: Promise<void>;

  constructor(options: PacerOptions) {
    this.leadFrames = Math.min(MAX_LEAD_FRAMES, Math.max(1, Math.ceil(options.leadMs / FRAME_MS)));
    this.onLateness = options.onLateness;
    const channel = new MessageChannel();
    this.port = channel.port1;
    this.worker = startThread({
      control: this.control.buffer,
      lateness: this.lateness.buffer,
      periodMs: FRAME_MS,
      nice: options.nice ?? 0,
      port: channel.port2,
    });
    this.worker.unref();
    let ready: () => void = () => undefined;
    this.ready = new Promise<boolean>((resolve) => {
      ready = () => resolve(true);
      this.worker.once('exit', () => resolve(false));
    });
    this.worker.on('message', (m: { niceRefused?: string; ready?: true }) => {
      if (m.ready === true) ready();
      if (m.niceRefused !== undefined) {
        options.log?.warn(
          { nice: options.nice, err: m.niceRefused },
          'the pacing thread keeps the process priority (a raised one needs CAP_SYS_NICE, or RLIMIT_NICE such as docker run --ulimit nice=35); frames may be later on busy cores',
        );
      }
    });
    // The ring holds sixteen seconds of the thread's turns (500 a second): once a second loses none.
    if (this.onLateness !== undefined) {
      this.drainTimer = setInterval(() => this.drainLateness(), 1000);
      this.drainTimer.unref();
    }
    this.exited = new Promise<void>((resolve) => {
      this.worker.once('error', (err) => {
        if (!this.stopping) options.log?.error({ err }, 'the pacing thread failed; calls are paced on the main thread');
      });
      this.worker.once('exit', (code) => {
        const wasAlive = this.alive;
        this.alive = false;
        if (wasAlive && !this.stopping) options.onExit?.(`exit code ${code}`);
        resolve();
      });
    });
  }

  /** False once the thread has stopped or died. */
  get running(): boolean {
    return this.alive;
  }

  /** Calls the thread is serving, turns it has run, and 20 ms slots it skipped after a stall over 200 ms. */
  get stats(): { slots: number; ticks: number; skipped: number } {
    return {
      slots: Atomics.load(this.control, C_SLOTS),
      ticks: Atomics.load(this.control, C_TICKS),
      skipped: Atomics.load(this.control, C_SKIPPED),
    };
  }

  /**
   * A slot writing to `fd` (a connected socket's descriptor, non-blocking), `idle` on every slot with nothing
   * staged from the thread's next slot on. Null when the thread is gone.
   */
  open(fd: number, reporter: SlotReporter, idle: Buffer | null): PacerSlot | null {
    if (!this.alive || this.stopping) return null;
    const capacity = this.leadFrames;
    const sab = new SharedArrayBuffer(blockBytes(capacity));
    const slot = new PacerSlot(this, sab, capacity, reporter);
    slot.setIdle(idle);
    Atomics.store(slot.header, H_STATE, ACTIVE);
    const message: OpenSlot = { sab, fd, capacity };
    this.port.postMessage(message);
    this.wake();
    return slot;
  }

  /** Hands the thread's tick lateness samples not yet seen to onLateness. */
  drainLateness(): void {
    const count = Atomics.load(this.control, C_LATE_COUNT);
    // Differences and indices as the thread writes them: the count wraps after 2^31 turns.
    const fresh = Math.min(LATE_RING, (count - this.lateSeen) | 0);
    for (let k = fresh; k > 0; k--) this.onLateness?.(this.lateness[((count - k) >>> 0) % LATE_RING] as number);
    this.lateSeen = count;
  }

  /**
   * Stops the thread after its current turn. Slots still open report `usable` false, and their outputs go back to
   * the main thread's clock. Idempotent.
   */
  async close(): Promise<void> {
    if (this.stopping) return this.exited;
    this.stopping = true;
    clearInterval(this.drainTimer);
    this.drainLateness();
    Atomics.store(this.control, C_STOP, 1);
    this.wake();
    const timer = setTimeout(() => void this.worker.terminate(), 1000);
    await this.exited;
    clearTimeout(timer);
    this.port.close();
  }

  private wake(): void {
    Atomics.add(this.control, C_WAKE, 1);
    Atomics.notify(this.control, C_WAKE);
  }
}

/** One call's ring on the pacing thread. Main-thread side; see layout.ts for who writes what. */
export class PacerSlot implements FrameStage {
  /** @internal */
  readonly header: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly buffer: Buffer;
  private released = false;
  private written = 0;
  private dropped = 0;
  private blocked = 0;
  private underruns = 0;

  constructor(
    private readonly pacer: Pacer,
    sab: SharedArrayBuffer,
    private readonly capacity: number,
    private readonly reporter: SlotReporter,
  ) {
    this.header = new Int32Array(sab, 0, HEADER_INTS);
    this.bytes = new Uint8Array(sab);
    this.buffer = Buffer.from(sab);
  }

  get usable(): boolean {
    return !this.released && this.pacer.running;
  }

  /** Frames that may be staged now. */
  room(): number {
    return this.capacity - this.pending();
  }

  pending(): number {
    return (Atomics.load(this.header, H_WRITE) - Atomics.load(this.header, H_READ)) | 0;
  }

  fits(frameBytes: number): boolean {
    return frameBytes <= ENTRY_BYTES;
  }

  put(frame: Buffer): void {
    if (frame.length > ENTRY_BYTES) throw new RangeError(`a ${frame.length}-byte frame does not fit a pacer slot`);
    if (this.room() <= 0) throw new RangeError('the pacer slot is full');
    const write = Atomics.load(this.header, H_WRITE);
    const entry = (write >>> 0) % this.capacity;
    this.buffer.set(frame, entryOffset(entry));
    this.header[H_LEN0 + entry] = frame.length;
    Atomics.store(this.header, H_WRITE, (write + 1) | 0);
  }

  retract(): Buffer[] {
    const h = this.header;
    for (;;) {
      const read = Atomics.load(h, H_READ);
      const write = Atomics.load(h, H_WRITE);
      if (read === write) return [];
      if (Atomics.compareExchange(h, H_READ, read, write) !== read) continue; // the thread just took one
      const frames: Buffer[] = [];
      for (let i = read; i !== write; i = (i + 1) | 0) {
        const entry = (i >>> 0) % this.capacity;
        const at = entryOffset(entry);
        frames.push(Buffer.from(this.bytes.subarray(at, at + (h[H_LEN0 + entry] as number))));
      }
      return frames;
    }
  }

  setIdle(frame: Buffer | null): void {
    const length = frame === null ? 0 : frame.length;
    if (length > ENTRY_BYTES) throw new RangeError(`a ${length}-byte idle frame does not fit a pacer slot`);
    // Zero first: the thread never writes a frame that is half old and half new.
    Atomics.store(this.header, H_IDLE_LEN, 0);
    if (frame !== null) this.buffer.set(frame, idleOffset(this.capacity));
    Atomics.store(this.header, H_IDLE_LEN, length);
  }

  setMore(more: boolean): void {
    Atomics.store(this.header, H_MORE, more ? 1 : 0);
  }

  /** Reports what the thread did since the last sync (SlotReporter). */
  sync(): void {
    const h = this.header;
    const written = Atomics.load(h, H_WRITTEN);
    if (written !== this.written) {
      this.reporter.written((written - this.written) | 0);
      this.written = written;
    }
    const dropped = Atomics.load(h, H_DROPPED);
    const blocked = Atomics.load(h, H_BLOCKED);
    if (dropped !== this.dropped || blocked !== this.blocked) {
      this.reporter.dropped((dropped - this.dropped) | 0, blocked);
      this.dropped = dropped;
      this.blocked = blocked;
    }
    const underruns = Atomics.load(h, H_UNDERRUNS);
    if (underruns !== this.underruns) {
      this.reporter.underran((underruns - this.underruns) | 0);
      this.underruns = underruns;
    }
  }

  /**
   * Takes the descriptor back from the thread: after this returns, the thread never writes to it again, and the
   * socket may close. Waits (at most for one write in progress) if the thread holds it. Returns the unwritten tail
   * of a frame the kernel took only part of, which must go out before anything else on this socket; idempotent.
   */
  release(): Buffer | null {
    if (this.released) return null;
    this.released = true;
    const h = this.header;
    for (;;) {
      const state = Atomics.compareExchange(h, H_STATE, ACTIVE, RELEASED);
      if (state !== WRITING) break;
      Atomics.wait(h, H_STATE, WRITING, 2);
    }
    const rem = Atomics.load(h, H_REM_LEN);
    if (rem === 0) return null;
    const at = remainderOffset(this.capacity);
    return Buffer.from(this.bytes.subarray(at, at + rem));
  }
}
