// Where Silero inference runs: on DSP worker threads (one per spare core by default), each serving the calls
// sharded to it, so the main thread keeps only sockets, the output clock, RPC and control. The windows of all
// calls of a worker that became ready in the same event-loop turn go to the model as one batch; a batch travels
// as transferred Float32Array buffers, never JSON. With 0 workers the model runs on the main thread instead.

import { performance } from 'node:perf_hooks';
import { SileroModel } from './silero-model.js';
import { MainThreadShard, type Shard, type ShardOwner, type VadPoolStats } from './silero-shards.js';
import { WorkerShard } from './silero-worker-shard.js';

export { DspWorkerCrashedError } from './silero-shards.js';
export type { VadPoolStats };

/** A call's place in the pool: its shard, released when the call's VAD closes. */
export interface VadLease {
  /** Speech probabilities of `count` consecutive windows of one call; `state` is updated in place. */
  infer(windows: Float32Array, count: number, state: Float32Array): Promise<Float32Array>;
  release(): void;
}

export class SileroPool implements ShardOwner {
  /** Windows queued or in a run, over all shards (maintained by the shards). */
  pending = 0;
  private readonly shards: Shard[];
  private batches = 0;
  private windows = 0;
  private busyMs = 0;
  private crashes = 0;
  private closed = false;

  private constructor(
    private readonly workerCount: number,
    model: SileroModel | null,
    private readonly onCrash: (detail: string) => void,
    workerNice = 0,
  ) {
    this.shards =
      model === null
        ? Array.from({ length: workerCount }, () => new WorkerShard(this, { nice: workerNice }))
        : [new MainThreadShard(this, model)];
  }

  /**
   * Starts `workers` threads and waits until each has loaded the model (≈ 40–100 ms each, off the main thread);
   * `workers` 0 loads the model on the main thread instead.
   */
  static async start(workers: number, onCrash: (detail: string) => void = () => undefined, workerNice = 0): Promise<SileroPool> {
    if (!Number.isInteger(workers) || workers < 0) throw new RangeError(`DSP worker count must be a whole number ≥ 0, got ${workers}`);
    if (workers === 0) return new SileroPool(0, await SileroModel.load(), onCrash);
    const pool = new SileroPool(workers, null, onCrash, workerNice);
    try {
      await Promise.all(pool.shards.map((s) => (s as WorkerShard).whenReady()));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** A shard for one call: the one serving the fewest calls. */
  lease(): VadLease {
    if (this.closed) throw new Error('the VAD pool is closed');
    let shard = this.shards[0] as Shard;
    for (const s of this.shards) if (s.calls < shard.calls) shard = s;
    shard.calls++;
    let released = false;
    return {
      infer: (windows, count, state) => shard.infer(windows, count, state),
      release: () => {
        if (released) return;
        released = true;
        shard.calls--;
      },
    };
  }

  ran(runs: number, windows: number, busyMs: number): void {
    this.batches += runs;
    this.windows += windows;
    this.busyMs += busyMs;
  }

  crashed(detail: string): void {
    this.crashes++;
    this.onCrash(detail);
  }

  stats(): VadPoolStats {
    const now = performance.now();
    return {
      workers: this.workerCount,
      calls: this.shards.reduce((n, s) => n + s.calls, 0),
      pendingWindows: this.pending,
      oldestBatchMs: Math.max(0, ...this.shards.map((s) => s.oldestBatchMs(now))),
      batches: this.batches,
      windows: this.windows,
      busyMs: this.busyMs,
      crashes: this.crashes,
    };
  }

  /** For tests: worker `index` dies of an uncaught exception after its current runs (it is replaced). */
  crashWorker(index: number): void {
    const shard = this.shards[index];
    if (!(shard instanceof WorkerShard)) throw new Error(`no worker ${index}`);
    shard.crash();
  }

  /** Stops every worker; pending inferences reject. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.shards.map((s) => s.close()));
  }
}
