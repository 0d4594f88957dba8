// A DSP worker thread: runs Silero batches for the calls sharded to it, so model inference never blocks the main
// thread's sockets, clock and RPC. A batch lives in one of a few slots of shared memory (SharedArrayBuffer) that
// the main thread and this worker share from the start: a message names the slot, nothing is copied, transferred
// or serialized per batch.

import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { SileroModel, VAD_WINDOW_SAMPLES } from './silero-model.js';

/** One batch's buffers (see SileroModel.runSteps); the worker's slots are views of shared memory. */
export interface BatchBuffers {
  counts: Int32Array;
  windows: Float32Array;
  states: Float32Array;
  probabilities: Float32Array;
}

/**
 * A batch from the main thread in slot `slot`: `jobs` calls, call j with `counts[j]` consecutive windows. The slot
 * is the worker's until it replies with the same id.
 */
export interface WorkerBatch {
  kind: 'run';
  id: number;
  slot: number;
  jobs: number;
}

/**
 * `close`: finish the runs in progress, release the model and end the thread (terminating a thread while
 * onnxruntime runs aborts the whole process, measured with onnxruntime-node 1.x). `crash`: the same wait, then
 * an uncaught exception — how tests reproduce a worker dying.
 */
export type WorkerRequest = WorkerBatch | { kind: 'close' } | { kind: 'crash' };

export type WorkerReply =
  | { kind: 'ready' }
  | { kind: 'load-failed'; message: string }
  | { kind: 'done'; id: number; busyMs: number; runs: number }
  | { kind: 'failed'; id: number; message: string };

const port = parentPort;
if (port === null) throw new Error('silero-worker.ts runs as a worker thread only');

let running = 0;
let idle: Array<() => void> = [];
const whenIdle = (): Promise<void> => (running === 0 ? Promise.resolve() : new Promise((resolve) => idle.push(resolve)));

/**
 * onnxruntime refuses input tensors over shared memory, so each slot's windows are copied into a plain buffer of
 * that slot's own first (runs queue in the model; a buffer shared by slots would be overwritten while it waits).
 */
const plainWindows: Float32Array[] = [];

function runSlot(model: SileroModel, slot: BatchBuffers, index: number, jobs: number): Promise<number> {
  let windows = 0;
  for (let j = 0; j < jobs; j++) windows += slot.counts[j] as number;
  const samples = windows * VAD_WINDOW_SAMPLES;
  let plain = plainWindows[index];
  if (plain === undefined || plain.length < samples) plain = plainWindows[index] = new Float32Array(slot.windows.length);
  plain.set(slot.windows.subarray(0, samples));
  return model.runSteps(plain, slot.states, slot.counts, jobs, slot.probabilities);
}

/** When the last batch finished: batches queue behind each other on the model, so busy time is their union. */
let lastEnd = 0;

function run(model: SileroModel, req: WorkerBatch, slots: readonly BatchBuffers[]): void {
  const t0 = performance.now();
  const { id, jobs } = req;
  const slot = slots[req.slot];
  running++;
  (slot === undefined ? Promise.reject(new Error(`no batch slot ${req.slot}`)) : runSlot(model, slot, req.slot, jobs))
    .then(
      (runs) => {
        // Only the part of [arrival, end] after the previous batch ended: a batch that waited for the model is
        // not busy twice (summed, the waits made the busy share read 2.06 under a burst of calls).
        const end = performance.now();
        const busyMs = Math.max(0, end - Math.max(t0, lastEnd));
        lastEnd = Math.max(lastEnd, end);
        port?.postMessage({ kind: 'done', busyMs, runs, id } satisfies WorkerReply);
      },
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        port?.postMessage({ kind: 'failed', message, id } satisfies WorkerReply);
      },
    )
    .finally(() => {
      running--;
      if (running === 0) for (const resolve of idle.splice(0)) resolve();
    });
}

/** What the pool tells a new worker (workerData). */
export interface WorkerSettings {
  /** Nice value for this thread (Linux: per thread), > 0 to yield to the main thread's I/O and clock. */
  nice: number;
  /** The batch slots, views of SharedArrayBuffers the main thread keeps too. */
  slots: BatchBuffers[];
}

const settings = (workerData ?? {}) as Partial<WorkerSettings>;
if (typeof settings.nice === 'number' && settings.nice > 0) {
  try {
    // pid 0: the calling thread only on Linux, where the nice value is a per-thread attribute.
    setPriority(0, settings.nice);
  } catch {
    // Not permitted here (or not Linux): the thread keeps the process's priority.
  }
}

SileroModel.load().then(
  (model) => {
    let closing = false;
    port.on('message', (req: WorkerRequest) => {
      if (req.kind === 'run') {
        if (!closing) run(model, req, settings.slots ?? []);
        return;
      }
      closing = true;
      void whenIdle().then(async () => {
        if (req.kind === 'crash') {
          setImmediate(() => {
            throw new Error('crash requested');
          });
          return;
        }
        await model.close();
        idle = [];
        port.close();
      });
    });
    port.postMessage({ kind: 'ready' } satisfies WorkerReply);
  },
  (err: unknown) => {
    port.postMessage({ kind: 'load-failed', message: err instanceof Error ? err.message : String(err) } satisfies WorkerReply);
  },
);
