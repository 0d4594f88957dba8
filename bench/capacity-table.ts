// Table rows for the capacity search, the overload point, the calibration and the resampler comparison, in the
// same Row shape as table.ts so they print and serialise together.

import type { CapacityResult, OverloadResult } from './capacity.js';
import type { Calibration, NormalizedCapacity } from './lib/calibration.js';
import type { ResamplerEntry } from './lib/resampler-quality.js';
import type { Row } from './table.js';

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

export interface CapacityTableInput {
  calibration?: Calibration;
  capacity: Array<{ result: CapacityResult; normalized: NormalizedCapacity | null }>;
  overload?: OverloadResult;
  resamplers?: ResamplerEntry[];
}

export function capacityRows(t: CapacityTableInput): Row[] {
  const rows: Row[] = [];
  const add = (section: string, figure: string, target: string, measured: string, ok: boolean | null): void => {
    rows.push({ section, figure, target, measured, ok });
  };
  const c = t.calibration;
  if (c !== undefined) {
    add('calibration', 'fixed CPU loop (M iterations per CPU second, one core)', '—', f1(c.cpuLoopMops), null);
    add('calibration', 'LiveKit AudioResampler QUICK 8→16 kHz (× real time)', '—', `${c.livekitResampler8to16.toFixed(0)}× (reference 1498×)`, null);
    add('calibration', 'LiveKit Silero plugin CPU per window (ms)', '—', `${c.livekitSileroMsPerWindow.toFixed(3)} (reference 0.115)`, null);
    add('calibration', 'speed index vs the BENCHMARKS.md machine (1 = as fast)', '—', f2(c.index), null);
  }
  const baseline = t.capacity.find((x) => x.result.build !== t.capacity[0]?.result.build);
  for (const { result: r, normalized: n } of t.capacity) {
    const s = `capacity [${r.build}]`;
    const bracket = r.failedAt === null ? `≥ ${r.capacity} (none failed up to the search's maximum)` : `${r.capacity} (failed at ${r.failedAt})`;
    add(s, 'most concurrent calls at the quality bar', '—', `${bracket}${r.budgetExhausted ? ' — time budget reached' : ''}`, null);
    if (n !== null) {
      add(s, 'calls per core / per 1000 M loop-iterations/s / at the reference machine', '≥ 250 at reference', `${f1(n.callsPerCore)} / ${f1(n.callsPerGigaLoop)} / ${f1(n.atReference)}`, r === t.capacity[0]?.result ? n.atReference >= 250 : null);
    }
    for (const p of r.points) {
      add(
        s,
        `${p.offered} calls: lateness p99 / max, added p50 / p99 (ms), daemon cores`,
        'p99 < 5, max < 20; p50 < 25, p99 < 50',
        `${f2(p.latenessP99Ms)} / ${f1(p.latenessMaxMs)}; ${f1(p.addedP50Ms)} / ${f1(p.addedP99Ms)}; ${f2(p.daemonCores)}${p.pass ? '' : ` — ${p.misses.join(', ')}`}`,
        p.pass,
      );
    }
  }
  const main = t.capacity[0]?.result;
  if (main !== undefined && baseline !== undefined && baseline.result.capacity > 0) {
    const ratio = main.capacity / baseline.result.capacity;
    add('capacity', `${main.build} vs ${baseline.result.build}, same machine and run`, '≥ 2.5×', `${f2(ratio)}×`, ratio >= 2.5);
  }
  const o = t.overload;
  if (o !== undefined) {
    const p = o.point;
    add(`overload [${o.build}]`, `offered ${o.offered}: admitted / refused (why it refused)`, '—', `${o.admitted} / ${o.refused}${o.reasons.length > 0 ? ` (${o.reasons.join('; ')})` : ''}`, o.refused > 0 ? null : false);
    add(
      `overload [${o.build}]`,
      'admitted calls: lateness p99 / max, added p50 / p99 (ms)',
      'the quality bar',
      `${f2(p.latenessP99Ms)} / ${f1(p.latenessMaxMs)}; ${f1(p.addedP50Ms)} / ${f1(p.addedP99Ms)}${p.pass ? '' : ` — ${p.misses.join(', ')}`}`,
      p.pass,
    );
  }
  const rs = t.resamplers ?? [];
  const ours = rs[0];
  for (const e of rs) {
    const faster = ours !== undefined && e !== ours ? ` (ours ${f2(ours.up8to16 / e.up8to16)}× / ${f2(ours.down16to8 / e.down16to8)}× its speed)` : '';
    add('resampler vs peers', `${e.name}: × real time 8→16 / 16→8${faster}`, e === ours ? '≥ LiveKit' : '—', `${e.up8to16.toFixed(0)}× / ${e.down16to8.toFixed(0)}×`, e === ours ? rs.filter((x) => x.name.startsWith('LiveKit')).every((x) => ours.up8to16 >= x.up8to16 && ours.down16to8 >= x.down16to8) : null);
    add('resampler vs peers', `${e.name}: SNR vs sinc_best (dB), up speech / sweep, down speech / sweep`, '—', `${f1(e.snrUpSpeech)} / ${f1(e.snrUpSweep)}, ${f1(e.snrDownSpeech)} / ${f1(e.snrDownSweep)}`, null);
  }
  return rows;
}
