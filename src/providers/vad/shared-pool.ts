// The process's one Silero pool (silero-pool.ts), shared by every SileroVad: started on first use or ahead of the
// first call by `holdPool` (startup), stopped when the last holder releases it.

import { availableParallelism } from 'node:os';
import { SileroPool } from './silero-pool.js';

export interface VadPoolOptions {
  /** DSP worker threads running the model; 0 runs it on the main thread. Default: one per spare core. */
  workers?: number | undefined;
  /** A worker died (it is replaced; the calls whose windows it was running get onError). */
  onWorkerCrash?: (detail: string) => void;
  /** Nice value of the worker threads (Linux, per thread): > 0 lets the main thread's clock and I/O go first. */
  workerNice?: number;
}

/** One worker per core beyond the main thread's, at least one. */
export function defaultDspWorkers(): number {
  return Math.max(1, availableParallelism() - 1);
}

let sharedPool: Promise<SileroPool> | undefined;
let currentPool: SileroPool | undefined;
let holders = 0;

/** The pool, started with `options` unless it runs already. */
export function loadPool(options: VadPoolOptions = {}): Promise<SileroPool> {
  sharedPool ??= SileroPool.start(options.workers ?? defaultDspWorkers(), options.onWorkerCrash, options.workerNice ?? 0).then(
    (pool) => {
      currentPool = pool;
      return pool;
    },
    (err: unknown) => {
      sharedPool = undefined; // let a later call retry instead of caching the failure forever
      throw err;
    },
  );
  return sharedPool;
}

/** Starts the pool (if nobody did) and holds it until the matching `releasePool`. */
export async function holdPool(options: VadPoolOptions = {}): Promise<void> {
  holders++;
  try {
    await loadPool(options);
  } catch (err) {
    holders--;
    throw err;
  }
}

/** Releases a `holdPool`; the last holder stops the workers (pending inferences reject). */
export async function releasePool(): Promise<void> {
  if (holders === 0) return;
  holders--;
  if (holders > 0 || sharedPool === undefined) return;
  const pool = sharedPool;
  sharedPool = undefined;
  currentPool = undefined;
  await (await pool.catch(() => undefined))?.close();
}

/** The pool once it has started (undefined before, and after it stopped). */
export function runningPool(): SileroPool | undefined {
  return currentPool;
}

/** The pool started or starting (undefined when none was asked for). */
export function startedPool(): Promise<SileroPool> | undefined {
  return sharedPool;
}
