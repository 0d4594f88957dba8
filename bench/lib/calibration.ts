// Calibration: figures of the machine measured in the same run as the capacity, so a capacity from a fast machine
// and one from a slow machine can be set side by side (machines of the same class differ by 2.5× per core).

import type { MicroResult } from '../micro.js';

/**
 * The reference machine: the one BENCHMARKS.md's figures of 2026-11-28 were measured on (LiveKit's AudioResampler
 * QUICK 8→16 kHz at 1498× real time, LiveKit's Silero plugin at 0.115 ms per window).
 */
export const REFERENCE = { livekitResampler8to16: 1498, livekitSileroMsPerWindow: 0.115 } as const;

export interface Calibration {
  /** Fixed CPU loop: millions of iterations per CPU second (single core). */
  cpuLoopMops: number;
  /** LiveKit AudioResampler QUICK 8→16 kHz, × real time. */
  livekitResampler8to16: number;
  /** LiveKit's Silero plugin model, CPU ms per 512-sample window. */
  livekitSileroMsPerWindow: number;
  /**
   * Speed relative to the reference machine: geometric mean of the LiveKit resampler and Silero ratios (1 = as
   * fast; 0.4 = 2.5× slower). NaN when a peer is not installed.
   */
  index: number;
}

export function calibrationOf(micro: readonly MicroResult[]): Calibration {
  let cpuLoopMops = Number.NaN;
  let livekitResampler8to16 = Number.NaN;
  let livekitSileroMsPerWindow = Number.NaN;
  for (const m of micro) {
    if (m.kind === 'cpu-loop') cpuLoopMops = m.figures.mops;
    else if (m.kind === 'peer-resampler' && m.available) livekitResampler8to16 = m.figures.QUICK?.up8to16 ?? Number.NaN;
    else if (m.kind === 'peer-vad' && m.available) livekitSileroMsPerWindow = m.figures.msPerWindow;
  }
  const index = Math.sqrt(
    (livekitResampler8to16 / REFERENCE.livekitResampler8to16) * (REFERENCE.livekitSileroMsPerWindow / livekitSileroMsPerWindow),
  );
  return { cpuLoopMops, livekitResampler8to16, livekitSileroMsPerWindow, index };
}

export interface NormalizedCapacity {
  capacity: number;
  cores: number;
  callsPerCore: number;
  /** Calls per 1000 M loop-iterations/s of single-core speed. */
  callsPerGigaLoop: number;
  /** Capacity scaled to the reference machine by the calibration index. */
  atReference: number;
}

export function normalize(capacity: number, cores: number, c: Calibration): NormalizedCapacity {
  return {
    capacity,
    cores,
    callsPerCore: capacity / cores,
    callsPerGigaLoop: capacity / (c.cpuLoopMops / 1000),
    atReference: capacity / c.index,
  };
}
