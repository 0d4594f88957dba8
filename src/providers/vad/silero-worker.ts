// A DSP worker thread: runs Silero batches for the calls sharded to it, so model inference never blocks the main
// thread's sockets, clock and RPC. Batches carry raw Float32Array buffers (transferred, never copied or JSON).

import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { SileroModel } from './silero-model.js';

/**
 * A batch from the main thread: `jobs` calls, call j with `counts[j]` consecutive windows (see
 * SileroModel.runSteps). The buffers come back in the reply, transferred.
 */
export interface WorkerBatch {
  kind: 'run';
  id: number;
  jobs: number;
  counts: Int32Array;
  windows: Float32Array;
  states: Float32Array;
  probabilities: Float32Array;
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
  | ({ busyMs: number; runs: number } & Omit<WorkerBatch, 'kind'> & { kind: 'done' })
  | ({ message: string } & Omit<WorkerBatch, 'kind'> & { kind: 'failed' });

const port = parentPort;
if (port === null) throw new Error('silero-worker.ts runs as a worker thread only');

let running = 0;
let idle: Array<() => void> = [];
const whenIdle = (): Promise<void> => (running === 0 ? Promise.resolve() : new Promise((resolve) => idle.push(resolve)));

function run(model: SileroModel, req: WorkerBatch): void {
  const t0 = performance.now();
  const transfer = [req.windows.buffer, req.states.buffer, req.probabilities.buffer, req.counts.buffer] as ArrayBuffer[];
  const { id, jobs, counts, windows, states, probabilities } = req;
  running++;
  model
    .runSteps(windows, states, counts, jobs, probabilities)
    .then(
      (runs) => port?.postMessage({ kind: 'done', busyMs: performance.now() - t0, runs, id, jobs, counts, windows, states, probabilities } satisfies WorkerReply, transfer),
      (err: unknown) => {
        const message = err instanceof Error ? err.message : String(err);
        port?.postMessage({ kind: 'failed', message, id, jobs, counts, windows, states, probabilities } satisfies WorkerReply, transfer);
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
        if (!closing) run(model, req);
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
