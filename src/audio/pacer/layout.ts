// The shared-memory layout of the pacing thread (pacer.ts, pacer-thread.ts): one control block for the thread and
// one block per call. A call's block is a small ring of encoded frames that the main thread stages ahead of the
// wire and the pacing thread writes to the call's socket, one per 20 ms slot, on its own clock.
//
// Ownership, so that neither side ever needs a lock for the audio itself:
// - WRITE is advanced by the main thread only, after the frame's bytes and length are in place.
// - READ is advanced by compare-and-swap from either side: by the pacing thread when it takes one frame to write,
//   by the main thread when it takes back every frame not yet written (barge-in, a pause, a rate change). Whoever
//   wins the swap owns those frames, so a frame is either written or given back, never both.
// - STATE guards the socket's descriptor: the pacing thread holds WRITING only for the length of one write, and the
//   main thread closes the socket only after swapping ACTIVE to RELEASED, so a descriptor number that the kernel
//   may hand to another socket is never written to after its close.

import type { MessagePort } from 'node:worker_threads';

/** Control block (Int32Array over a SharedArrayBuffer). */
export const C_WAKE = 0; // bumped (and notified) by the main thread when it has something for the thread
export const C_STOP = 1; // 1: the thread leaves its loop
export const C_SLOTS = 2; // calls the thread is serving (written by the thread)
export const C_TICKS = 3; // ticks run (written by the thread)
export const C_LATE_COUNT = 4; // lateness samples written to the lateness ring (written by the thread)
export const C_SKIPPED = 5; // slots skipped after a stall longer than MAX_CATCH_UP_SLOTS (written by the thread)
export const CONTROL_INTS = 8;

/** Tick lateness samples (ms) kept for the main thread to fold into the lateness histogram (a power of two). */
export const LATE_RING = 8192;

/** Per-call header (Int32Array at the start of the call's SharedArrayBuffer). */
export const H_STATE = 0;
export const H_WRITE = 1;
export const H_READ = 2;
export const H_IDLE_LEN = 3; // bytes of the frame written on a slot with nothing staged; 0 writes nothing
export const H_REM_LEN = 4; // bytes of a partly written frame still to go, kept in the remainder area
export const H_WRITTEN = 5; // frames fully handed to the kernel (staged and idle ones)
export const H_DROPPED = 6; // frames not written because the socket's buffer was full
export const H_BLOCKED = 7; // consecutive slots on which the socket took nothing (0 after any full write)
export const H_UNDERRUNS = 8; // slots that found nothing staged while bot audio was still waiting on the main thread
export const H_MORE = 9; // 1 while the main thread holds bot audio beyond what is staged
export const H_LEN0 = 16; // H_LEN0 + i: byte length of ring entry i
export const MAX_LEAD_FRAMES = 16;
export const HEADER_INTS = H_LEN0 + MAX_LEAD_FRAMES;

export const ACTIVE = 1;
export const WRITING = 2;
export const RELEASED = 3;

/** Bytes per ring entry: a 20 ms frame at up to 48 kHz plus a 3-byte Audiosocket header, rounded up. */
export const ENTRY_BYTES = 1924;

/** Byte offsets inside a call's block. */
export function entryOffset(entry: number): number {
  return HEADER_INTS * 4 + entry * ENTRY_BYTES;
}
export function idleOffset(capacity: number): number {
  return entryOffset(capacity);
}
export function remainderOffset(capacity: number): number {
  return entryOffset(capacity + 1);
}
export function blockBytes(capacity: number): number {
  return entryOffset(capacity + 2);
}

/** What the main thread sends the pacing thread for a new call. */
export interface OpenSlot {
  sab: SharedArrayBuffer;
  fd: number;
  capacity: number;
}

/** workerData of the pacing thread. */
export interface PacerThreadData {
  control: SharedArrayBuffer;
  lateness: SharedArrayBuffer;
  periodMs: number;
  port: MessagePort;
  /** Nice value for the thread (Linux: per thread); negative needs CAP_SYS_NICE. 0 leaves it as the process. */
  nice: number;
}
