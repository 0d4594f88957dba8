// A Silero pool host on a DSP worker thread (silero-worker.ts). Batches travel through a few slots of shared
// memory set up when the worker starts: a message names the slot, so a batch costs the main thread a copy into
// the slot and two tiny messages — no transferred buffers, whose every arrival V8 counts as new external memory
// (that alone made the main thread run a full mark-compact every second or so under load).

import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { pollOutputClocks } from '../../audio/clock.js';
import { DspWorkerCrashedError, newBuffers, pack, Shard, unpack, windowsOf, type Buffers, type Job, type ShardOwner } from './silero-shards.js';
import type { WorkerReply, WorkerRequest, WorkerSettings } from './silero-worker.js';

/** A worker that does not end within this after `close` is terminated. */
const CLOSE_TIMEOUT_MS = 5_000;
/** Batches in flight at once per worker (its runs are sequential; more slots only queue there). */
const SLOTS = 4;

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
  private readonly inFlight = new Map<number, { jobs: Job[]; sentAt: number; slot: number }>();
  private closed = false;
  /** The batch slots in shared memory, and which are free. */
  private readonly slots: Buffers[] = Array.from({ length: SLOTS }, () => newBuffers(true));
  private readonly freeSlots: number[] = Array.from({ length: SLOTS }, (_, i) => SLOTS - 1 - i);
  private readonly settings: WorkerSettings;

  constructor(pool: ShardOwner, options: { nice: number }) {
    super(pool);
    this.settings = { nice: options.nice, slots: this.slots };
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

  protected override takeBuffers(): Buffers | undefined {
    const slot = this.freeSlots.pop();
    return slot === undefined ? undefined : this.slots[slot];
  }

  protected send(jobs: Job[], buf: Buffers): void {
    pack(jobs, buf);
    const id = this.nextId++;
    const slot = this.slots.indexOf(buf);
    this.inFlight.set(id, { jobs, sentAt: performance.now(), slot });
    if (this.inFlight.size === 1) this.holdProcess();
    this.worker.postMessage({ kind: 'run', id, slot, jobs: jobs.length } satisfies WorkerRequest);
  }

  private reply(reply: Extract<WorkerReply, { kind: 'done' | 'failed' }>): void {
    const batch = this.inFlight.get(reply.id);
    if (batch === undefined) return;
    this.inFlight.delete(reply.id);
    if (this.inFlight.size === 0) this.holdProcess();
    this.settle(batch.jobs);
    const buf = this.slots[batch.slot] as Buffers;
    if (reply.kind === 'done') {
      this.pool.ran(reply.runs, windowsOf(batch.jobs), reply.busyMs);
      unpack(batch.jobs, buf);
    } else {
      const err = new Error(`VAD inference failed: ${reply.message}`);
      for (const job of batch.jobs) job.reject(err);
    }
    this.freeSlots.push(batch.slot);
    // Jobs that waited for a free slot go now.
    if (this.queue.length > 0) this.flush();
    // The calls' VAD decisions ran from here (turns, replies): a tick that fell due meanwhile goes out now.
    pollOutputClocks();
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
    for (const { jobs, slot } of this.inFlight.values()) {
      this.settle(jobs);
      for (const job of jobs) job.reject(err);
      this.freeSlots.push(slot);
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

