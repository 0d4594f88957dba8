// The hosts of the Silero pool (silero-pool.ts): a DSP worker thread, or the main thread when there are no
// workers. Each batches the windows of its calls that became ready in the same event-loop turn into one model run.

import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { pollOutputClocks } from '../../audio/clock.js';
import { STATE_SIZE, type SileroModel, VAD_WINDOW_SAMPLES } from './silero-model.js';
import type { WorkerReply, WorkerRequest, WorkerSettings } from './silero-worker.js';

/** What a shard reports to its pool. */
export interface ShardOwner {
  /** Windows queued or in a run, over all shards. */
  pending: number;
  ran(runs: number, windows: number, busyMs: number): void;
  crashed(detail: string): void;
}

/** A worker that does not end within this after `close` is terminated. */
const CLOSE_TIMEOUT_MS = 5_000;

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

interface Buffers {
  counts: Int32Array;
  windows: Float32Array;
  states: Float32Array;
  probabilities: Float32Array;
}

const newBuffers = (): Buffers => ({
  counts: new Int32Array(MAX_BATCH),
  windows: new Float32Array(MAX_BATCH * MAX_WINDOWS_PER_JOB * VAD_WINDOW_SAMPLES),
  states: new Float32Array(MAX_BATCH * STATE_SIZE),
  probabilities: new Float32Array(MAX_BATCH * MAX_WINDOWS_PER_JOB),
});

/** Copies the jobs' windows, counts and states into a batch's buffers. */
function pack(jobs: readonly Job[], buf: Buffers): void {
  let at = 0;
  jobs.forEach((job, j) => {
    buf.counts[j] = job.count;
    buf.windows.set(job.windows.subarray(0, job.count * VAD_WINDOW_SAMPLES), at * VAD_WINDOW_SAMPLES);
    buf.states.set(job.state, j * STATE_SIZE);
    at += job.count;
  });
}

/** Hands each job its probabilities (a copy: the buffer is reused) and its next recurrent state. */
function unpack(jobs: readonly Job[], buf: Buffers): void {
  let at = 0;
  jobs.forEach((job, j) => {
    job.state.set(buf.states.subarray(j * STATE_SIZE, (j + 1) * STATE_SIZE));
    job.resolve(buf.probabilities.slice(at, at + job.count));
    at += job.count;
  });
}

const windowsOf = (jobs: readonly Job[]): number => jobs.reduce((n, j) => n + j.count, 0);

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
    for (let i = 0; i < jobs.length; i += MAX_BATCH) this.send(jobs.slice(i, i + MAX_BATCH), this.free.pop() ?? newBuffers());
  };

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

/**
 * The compiled worker next to this module. Run from sources (tsx, Vitest) the worker is a .ts file: a tiny
 * bootstrap registers tsx's loader inside the new thread first (loader hooks of the parent do not reach workers
 * on Node 20).
 */
function startWorker(settings: WorkerSettings): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./silero-worker.js', import.meta.url), { workerData: settings });
  const script = new URL('./silero-worker.ts', import.meta.url).href;
  return new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(script)}); });`, { eval: true, workerData: settings });
}

export class WorkerShard extends Shard {
  private worker!: Worker;
  private isReady = false;
  private loaded!: Promise<void>;
  private nextId = 1;
  private readonly inFlight = new Map<number, { jobs: Job[]; sentAt: number }>();
  private closed = false;

  constructor(
    pool: ShardOwner,
    private readonly settings: WorkerSettings,
  ) {
    super(pool);
    this.spawn();
  }

  /** Resolves when the worker has loaded its model; rejects if it cannot. */
  whenReady(): Promise<void> {
    return this.loaded;
  }

  private spawn(): void {
    const worker = startWorker(this.settings);
    this.worker = worker;
    this.isReady = false;
    // The model load is the first thing the worker does; its answer is the first message.
    this.loaded = new Promise((resolve, reject) => {
      worker.on('message', (reply: WorkerReply) => {
        if (reply.kind === 'ready') {
          this.isReady = true;
          this.holdProcess();
          resolve();
          if (this.queue.length > 0) this.flush();
        } else if (reply.kind === 'load-failed') {
          reject(new Error(`the DSP worker could not load the Silero model: ${reply.message}`));
        } else {
          this.reply(reply);
        }
      });
      worker.on('error', (err) => {
        reject(err);
        this.crashed(err.message);
      });
      worker.on('exit', (code) => {
        if (!this.closed) this.crashed(`exit code ${code}`);
      });
    });
    // Nothing awaits `loaded` for a replacement worker; its failure is reported through the jobs instead.
    this.loaded.catch(() => undefined);
  }

  /**
   * An idle worker must not keep a finished process alive (the pool is closed in shutdown, but a test or a
   * script may never do it); one with work in flight must, or a process whose only pending work is an inference
   * would exit while awaiting it.
   */
  private holdProcess(): void {
    if (this.inFlight.size > 0 || !this.isReady) this.worker.ref();
    else this.worker.unref();
  }

  protected ready(): boolean {
    return this.isReady && !this.closed;
  }

  protected send(jobs: Job[], buf: Buffers): void {
    pack(jobs, buf);
    const id = this.nextId++;
    this.inFlight.set(id, { jobs, sentAt: performance.now() });
    if (this.inFlight.size === 1) this.holdProcess();
    const req: WorkerRequest = { kind: 'run', id, jobs: jobs.length, ...buf };
    this.worker.postMessage(req, [buf.windows.buffer, buf.states.buffer, buf.probabilities.buffer, buf.counts.buffer] as ArrayBuffer[]);
  }

  private reply(reply: Extract<WorkerReply, { kind: 'done' | 'failed' }>): void {
    const batch = this.inFlight.get(reply.id);
    if (batch === undefined) return;
    this.inFlight.delete(reply.id);
    if (this.inFlight.size === 0) this.holdProcess();
    this.settle(batch.jobs);
    const buf = { counts: reply.counts, windows: reply.windows, states: reply.states, probabilities: reply.probabilities };
    if (reply.kind === 'done') {
      this.pool.ran(reply.runs, windowsOf(batch.jobs), reply.busyMs);
      unpack(batch.jobs, buf);
    } else {
      const err = new Error(`VAD inference failed: ${reply.message}`);
      for (const job of batch.jobs) job.reject(err);
    }
    this.free.push(buf);
  }

  /**
   * The worker died: the calls whose windows were in its model run lost their recurrent state with it, and are
   * told so (their VAD reports the error, the call ends with a clear reason). Windows still queued here go to the
   * replacement worker once it has loaded the model: those calls carry on.
   */
  private crashed(detail: string): void {
    if (this.closed) return;
    this.worker.removeAllListeners();
    void this.worker.terminate().catch(() => undefined);
    const err = new DspWorkerCrashedError(detail);
    for (const { jobs } of this.inFlight.values()) {
      this.settle(jobs);
      for (const job of jobs) job.reject(err);
    }
    this.inFlight.clear();
    this.pool.crashed(detail);
    this.spawn();
  }

  oldestBatchMs(now: number): number {
    let oldest = 0;
    for (const b of this.inFlight.values()) oldest = Math.max(oldest, now - b.sentAt);
    return oldest;
  }

  /** For tests: makes the worker die of an uncaught exception once its current runs are done. */
  crash(): void {
    this.worker.postMessage({ kind: 'crash' } satisfies WorkerRequest);
  }

  /**
   * Lets the runs in progress finish (their results are dropped), then the worker releases the model and ends;
   * terminate() is only the fallback, because killing a thread inside onnxruntime aborts the process.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopped = true;
    const err = new Error('the VAD pool was closed');
    for (const { jobs } of this.inFlight.values()) for (const job of jobs) job.reject(err);
    for (const job of this.queue) job.reject(err);
    this.inFlight.clear();
    this.queue = [];
    this.queued = 0;
    this.cancelFlush();
    const worker = this.worker;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ kind: 'close' } satisfies WorkerRequest);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), CLOSE_TIMEOUT_MS);
    });
    if ((await Promise.race([exited, late])) === 'late') await worker.terminate();
    clearTimeout(timer);
  }
}

