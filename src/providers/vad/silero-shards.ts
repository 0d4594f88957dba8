// The hosts of the Silero pool (silero-pool.ts): a DSP worker thread, or the main thread when there are no
// workers. Each batches the windows of its calls that became ready in the same event-loop turn into one model run.

import { performance } from 'node:perf_hooks';
import { pollOutputClocks } from '../../audio/clock.js';
import { STATE_SIZE, type SileroModel, VAD_WINDOW_SAMPLES } from './silero-model.js';
import type { BatchBuffers } from './silero-worker.js';

/** What a shard reports to its pool. */
export interface ShardOwner {
  /** Windows queued or in a run, over all shards. */
  pending: number;
  ran(runs: number, windows: number, busyMs: number): void;
  crashed(detail: string): void;
}

/** Calls per batch: a model run of 64 windows costs ≈ 3 ms, short enough that no call's next window waits long. */
const MAX_BATCH = 64;
/**
 * Windows one call may send at once. A call's windows are sequential (each needs the state the previous one left),
 * so with one window per round trip a call could never analyse faster than one window per thread hop: on a busy
 * machine it would fall behind and drop audio. Its backlog goes in one request instead, run in steps.
 */
export const MAX_WINDOWS_PER_JOB = 8;

/**
 * Longest a window waits for other calls' windows to share its model run. A run costs ≈ 0.17 ms of overhead plus
 * ≈ 0.09 ms per window (this machine class, batch 1 → 64: 0.26 → 0.09 ms per window); calls complete windows at
 * random moments, so without waiting most runs held one or two windows and the VAD cost twice what it must. The
 * wait is sized to the shard's calls: the run goes as soon as about COALESCE_MS worth of their windows is
 * queued, or after COALESCE_MS; a shard with a handful of calls does not wait at all.
 */
export const COALESCE_MS = 4;
const WINDOW_MS = (VAD_WINDOW_SAMPLES / 16_000) * 1000;

/** The worker that ran a call's windows died; the call's VAD state is gone with it. */
export class DspWorkerCrashedError extends Error {
  constructor(detail: string) {
    super(`the DSP worker thread running this call's VAD crashed (${detail}); the call cannot detect speech any more`);
    this.name = 'DspWorkerCrashedError';
  }
}

export interface VadPoolStats {
  /** Worker threads (0: inference on the main thread). */
  workers: number;
  /** Calls holding a shard. */
  calls: number;
  /** Windows queued or in a model run right now. */
  pendingWindows: number;
  /** Age of the oldest batch still in a model run (ms; 0 when none): how far inference is behind. */
  oldestBatchMs: number;
  /** Model runs and windows so far (windows / batches = mean batch size). */
  batches: number;
  windows: number;
  /** Milliseconds the model ran, summed over the workers: busy fraction = Δ busyMs / (Δ wall × workers). */
  busyMs: number;
  /** Workers that died and were replaced. */
  crashes: number;
}

/** One call's request: `count` consecutive windows (count × 512 samples) and its recurrent state. */
export interface Job {
  windows: Float32Array;
  count: number;
  state: Float32Array;
  resolve: (probabilities: Float32Array) => void;
  reject: (err: unknown) => void;
}

export type Buffers = BatchBuffers;

/** One batch's buffers, in plain memory, or in shared memory (for a worker's slots). */
export function newBuffers(shared = false): Buffers {
  const f32 = (n: number): Float32Array => (shared ? new Float32Array(new SharedArrayBuffer(n * 4)) : new Float32Array(n));
  return {
    counts: shared ? new Int32Array(new SharedArrayBuffer(MAX_BATCH * 4)) : new Int32Array(MAX_BATCH),
    windows: f32(MAX_BATCH * MAX_WINDOWS_PER_JOB * VAD_WINDOW_SAMPLES),
    states: f32(MAX_BATCH * STATE_SIZE),
    probabilities: f32(MAX_BATCH * MAX_WINDOWS_PER_JOB),
  };
}

/** Copies the jobs' windows, counts and states into a batch's buffers. */
export function pack(jobs: readonly Job[], buf: Buffers): void {
  let at = 0;
  jobs.forEach((job, j) => {
    buf.counts[j] = job.count;
    buf.windows.set(job.windows.subarray(0, job.count * VAD_WINDOW_SAMPLES), at * VAD_WINDOW_SAMPLES);
    buf.states.set(job.state, j * STATE_SIZE);
    at += job.count;
  });
}

/** Hands each job its probabilities (a copy: the buffer is reused) and its next recurrent state. */
export function unpack(jobs: readonly Job[], buf: Buffers): void {
  let at = 0;
  jobs.forEach((job, j) => {
    job.state.set(buf.states.subarray(j * STATE_SIZE, (j + 1) * STATE_SIZE));
    job.resolve(buf.probabilities.slice(at, at + job.count));
    at += job.count;
  });
}

export const windowsOf = (jobs: readonly Job[]): number => jobs.reduce((n, j) => n + j.count, 0);

/**
 * One model host (a worker thread, or the main thread) with its own queue and its share of the calls. The queue
 * is bounded by the number of calls: each SileroVad has at most one request (≤ MAX_WINDOWS_PER_JOB windows) in
 * inference at a time.
 */
export abstract class Shard {
  calls = 0;
  protected queue: Job[] = [];
  /** Windows in `queue`. */
  protected queued = 0;
  private coalesceTimer: NodeJS.Timeout | undefined;
  /** Closed: new inferences reject at once instead of waiting for a host that will not come. */
  protected stopped = false;
  private scheduled = false;
  protected readonly free: Buffers[] = [];

  constructor(protected readonly pool: ShardOwner) {}

  infer(windows: Float32Array, count: number, state: Float32Array): Promise<Float32Array> {
    if (this.stopped) return Promise.reject(new Error('the VAD pool was closed'));
    if (!Number.isInteger(count) || count < 1 || count > MAX_WINDOWS_PER_JOB || windows.length < count * VAD_WINDOW_SAMPLES) {
      return Promise.reject(new RangeError(`a VAD request holds 1 to ${MAX_WINDOWS_PER_JOB} whole windows, got ${count}`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ windows, count, state, resolve, reject });
      this.queued += count;
      this.pool.pending += count;
      if (this.scheduled) return;
      if (this.queued >= this.batchTarget()) {
        this.scheduled = true;
        setImmediate(this.flush);
      } else {
        this.coalesceTimer ??= setTimeout(this.flush, COALESCE_MS);
      }
    });
  }

  /** Windows worth one run now: what the shard's calls complete in about COALESCE_MS (at least 1). */
  private batchTarget(): number {
    return Math.max(1, Math.floor((this.calls * COALESCE_MS) / WINDOW_MS));
  }

  /** Everything queued goes out at once, in runs of at most MAX_BATCH. */
  protected readonly flush = (): void => {
    this.scheduled = false;
    clearTimeout(this.coalesceTimer);
    this.coalesceTimer = undefined;
    if (!this.ready()) return; // re-flushed once the host is ready
    const jobs = this.queue;
    this.queue = [];
    this.queued = 0;
    for (let i = 0; i < jobs.length; i += MAX_BATCH) {
      const buf = this.takeBuffers();
      if (buf === undefined) {
        // Every batch slot is in a run: the rest waits for the next one to come back (it flushes again).
        this.queue = jobs.slice(i);
        this.queued = windowsOf(this.queue);
        return;
      }
      this.send(jobs.slice(i, i + MAX_BATCH), buf);
    }
  };

  /** Buffers for the next batch; undefined when the host has none free right now. */
  protected takeBuffers(): Buffers | undefined {
    return this.free.pop() ?? newBuffers();
  }

  /** No flush is pending any more (the host is closing). */
  protected cancelFlush(): void {
    clearTimeout(this.coalesceTimer);
    this.coalesceTimer = undefined;
  }

  protected settle(jobs: readonly Job[]): void {
    this.pool.pending -= windowsOf(jobs);
  }

  protected abstract ready(): boolean;
  protected abstract send(jobs: Job[], buf: Buffers): void;
  abstract oldestBatchMs(now: number): number;
  abstract close(): Promise<void>;
}

/** Inference on the main thread (workers: 0): the model blocks the loop while it runs. */
export class MainThreadShard extends Shard {
  constructor(
    pool: ShardOwner,
    private readonly model: SileroModel,
  ) {
    super(pool);
  }

  protected ready(): boolean {
    return true;
  }

  protected send(jobs: Job[], buf: Buffers): void {
    pack(jobs, buf);
    const t0 = performance.now();
    this.model
      .runSteps(buf.windows, buf.states, buf.counts, jobs.length, buf.probabilities)
      .then(
        (runs) => {
          this.pool.ran(runs, windowsOf(jobs), performance.now() - t0);
          unpack(jobs, buf);
        },
        (err: unknown) => {
          for (const job of jobs) job.reject(err);
        },
      )
      .finally(() => {
        this.settle(jobs);
        this.free.push(buf);
        // A run blocks the loop for up to a few ms: an output tick that fell due meanwhile goes out now.
        pollOutputClocks();
      });
  }

  oldestBatchMs(): number {
    return 0;
  }

  close(): Promise<void> {
    this.stopped = true;
    this.cancelFlush();
    const err = new Error('the VAD pool was closed');
    for (const job of this.queue) job.reject(err);
    this.settle(this.queue);
    this.queue = [];
    this.queued = 0;
    return this.model.close();
  }
}
