// The pacing thread (see layout.ts and pacer.ts): every 20 ms it writes each call's next staged frame, or its idle
// frame, straight to the call's socket descriptor. It never returns to its event loop: it sleeps in Atomics.wait
// until the next slot (or until the main thread wakes it), and takes new calls with receiveMessageOnPort. Its heap
// stays tiny, so it has no garbage-collection pauses of note, and the main thread's pauses (GC, a burst of socket
// reads) no longer move the frames on the wire.

import { writeSync } from 'node:fs';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import {
  ACTIVE,
  C_LATE_COUNT,
  C_SKIPPED,
  C_SLOTS,
  C_STOP,
  C_TICKS,
  C_WAKE,
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
  LATE_RING,
  WRITING,
  entryOffset,
  idleOffset,
  remainderOffset,
  type OpenSlot,
  type PacerThreadData,
} from './layout.js';

/** Missed slots caught up with a burst after a stall of up to 200 ms; a longer one re-anchors (as clock.ts). */
const MAX_CATCH_UP_SLOTS = 10;
/**
 * Calls are spread over this many phases of the 20 ms period (2 ms apart), as the channels of a real Asterisk are:
 * each wake writes one phase's calls, so a write burst is a tenth as long and the peer's reads are spread too.
 */
const PHASES = 10;

interface Slot {
  h: Int32Array;
  bytes: Uint8Array;
  fd: number;
  capacity: number;
  remOffset: number;
  idleOffset: number;
  /** A write failed for good: nothing more is written to this descriptor. */
  dead: boolean;
}

const data = workerData as PacerThreadData;
if (data.nice !== 0) {
  try {
    // pid 0: this thread only, on Linux, where the nice value is a per-thread attribute.
    setPriority(0, data.nice);
  } catch (err) {
    parentPort?.postMessage({ niceRefused: (err as Error).message });
  }
}
const control = new Int32Array(data.control);
const lateness = new Float64Array(data.lateness);
const periodMs = data.periodMs;
/** The calls of each phase. */
const phases: Slot[][] = Array.from({ length: PHASES }, () => []);
let total = 0;

/** The phase with the fewest calls: a new call joins it, so every phase's burst of writes stays short. */
function emptiestPhase(): number {
  let best = 0;
  for (let p = 1; p < PHASES; p++) if ((phases[p] as Slot[]).length < (phases[best] as Slot[]).length) best = p;
  return best;
}

function takeMessages(): void {
  for (let m = receiveMessageOnPort(data.port); m !== undefined; m = receiveMessageOnPort(data.port)) {
    const open = m.message as OpenSlot;
    const h = new Int32Array(open.sab, 0, H_LEN0 + open.capacity);
    if (Atomics.load(h, H_STATE) !== ACTIVE) continue; // released before the thread saw it
    (phases[emptiestPhase()] as Slot[]).push({
      h,
      bytes: new Uint8Array(open.sab),
      fd: open.fd,
      capacity: open.capacity,
      remOffset: remainderOffset(open.capacity),
      idleOffset: idleOffset(open.capacity),
      dead: false,
    });
    total++;
  }
  Atomics.store(control, C_SLOTS, total);
}

/** Hands `length` bytes at `offset` to the kernel; what it does not take waits in the remainder area. */
function write(slot: Slot, offset: number, length: number): void {
  const h = slot.h;
  let n: number;
  try {
    n = writeSync(slot.fd, slot.bytes, offset, length);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
      Atomics.add(h, H_DROPPED, 1);
      Atomics.add(h, H_BLOCKED, 1);
      return;
    }
    // EPIPE, ECONNRESET, EBADF…: the peer is gone; the main thread learns it from its own read side.
    slot.dead = true;
    return;
  }
  if (n < length) {
    // Never start another frame in the middle of this one: its tail goes first on the next slot.
    slot.bytes.copyWithin(slot.remOffset, offset + n, offset + length);
    Atomics.store(h, H_REM_LEN, length - n);
    Atomics.add(h, H_BLOCKED, 1);
    return;
  }
  Atomics.store(h, H_BLOCKED, 0);
  Atomics.add(h, H_WRITTEN, 1);
}

function serve(slot: Slot): void {
  const h = slot.h;
  if (slot.dead) return;
  const rem = Atomics.load(h, H_REM_LEN);
  if (rem > 0) {
    Atomics.store(h, H_REM_LEN, 0);
    write(slot, slot.remOffset, rem);
    if (Atomics.load(h, H_REM_LEN) > 0 || slot.dead) return;
  }
  const read = Atomics.load(h, H_READ);
  if (read !== Atomics.load(h, H_WRITE) && Atomics.compareExchange(h, H_READ, read, (read + 1) | 0) === read) {
    const entry = (read >>> 0) % slot.capacity;
    write(slot, entryOffset(entry), h[H_LEN0 + entry] as number);
    return;
  }
  if (Atomics.load(h, H_MORE) === 1) Atomics.add(h, H_UNDERRUNS, 1);
  const idle = Atomics.load(h, H_IDLE_LEN);
  if (idle > 0) write(slot, slot.idleOffset, idle);
}

/** One phase's turn: each of its calls gets its next frame. */
function tick(phase: number, lateMs: number): void {
  const slots = phases[phase] as Slot[];
  if (slots.length === 0) return;
  for (let i = slots.length - 1; i >= 0; i--) {
    const slot = slots[i] as Slot;
    if (Atomics.compareExchange(slot.h, H_STATE, ACTIVE, WRITING) !== ACTIVE) {
      // Released by the main thread: its socket may be closed from now on.
      const last = slots.pop() as Slot;
      if (last !== slot) slots[i] = last;
      total--;
      continue;
    }
    try {
      serve(slot);
    } finally {
      Atomics.store(slot.h, H_STATE, ACTIVE);
      Atomics.notify(slot.h, H_STATE);
    }
  }
  Atomics.store(control, C_SLOTS, total);
  // The count wraps after 2^31 turns (49 days); read unsigned, and LATE_RING divides 2^32, so the ring does not jump.
  const n = control[C_LATE_COUNT] as number;
  lateness[(n >>> 0) % LATE_RING] = lateMs;
  Atomics.store(control, C_LATE_COUNT, (n + 1) | 0);
  Atomics.add(control, C_TICKS, 1);
}

function run(): void {
  const step = periodMs / PHASES;
  let anchored = false;
  let start = 0;
  let sub = 0;
  for (;;) {
    const seq = Atomics.load(control, C_WAKE);
    if (Atomics.load(control, C_STOP) === 1) return;
    takeMessages();
    if (total === 0) {
      anchored = false;
      Atomics.wait(control, C_WAKE, seq);
      continue;
    }
    const now = performance.now();
    if (!anchored) {
      // The first call after an idle spell: its first frame goes out now, and the grid starts here.
      anchored = true;
      start = now;
      for (let p = 0; p < PHASES; p++) tick(p, 0);
      // Every phase had its turn at the anchor: the next turn is phase 0's, a whole period later.
      sub = PHASES - 1;
      continue;
    }
    const due = start + (sub + 1) * step;
    if (now < due - 0.05) {
      Atomics.wait(control, C_WAKE, seq, due - now);
      continue;
    }
    let late = now - due;
    let missed = Math.floor(late / step);
    if (missed >= MAX_CATCH_UP_SLOTS * PHASES) {
      // Blocked for long: the missed slots are skipped, not sent as a burst Asterisk would have to swallow.
      Atomics.add(control, C_SKIPPED, Math.floor(missed / PHASES));
      start = now - (sub + 1) * step;
      late = 0;
      missed = 0;
    }
    // A short stall is caught up, oldest turn first, so every call stays on its own 20 ms grid.
    for (let j = 0; j <= missed; j++) {
      sub++;
      tick(sub % PHASES, late - j * step);
    }
  }
}

parentPort?.postMessage({ ready: true });
run();
