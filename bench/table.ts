// The benchmark's table: each SPEC §14 figure beside its target, plus the context figures, as rows that are
// printed and also written into results.json.

import type { CallsResult } from './calls.js';
import type { ChurnResult } from './churn.js';
import type { MicroResult } from './micro.js';
import type { RpcResult } from './rpc.js';

export interface Row {
  section: string;
  figure: string;
  target: string;
  measured: string;
  /** true = target met, false = missed, null = no target (context). */
  ok: boolean | null;
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const mb = (bytes: number): string => (Number.isFinite(bytes) ? `${(bytes / 2 ** 20).toFixed(2)} MiB` : 'n/a');

export interface TableInput {
  /** RESAMPLER_QUALITY of the daemon: the resampler target is checked for it (SPEC §2.3: the default). */
  quality: string;
  calls?: CallsResult;
  churn?: ChurnResult;
  rpc?: RpcResult;
  micro?: MicroResult[];
}

export function buildRows(t: TableInput): Row[] {
  const rows: Row[] = [];
  const add = (section: string, figure: string, target: string, measured: string, ok: boolean | null): void => {
    rows.push({ section, figure, target, measured, ok });
  };
  const c = t.calls;
  if (c !== undefined) {
    const s = `calls (${c.calls})`;
    add(s, 'output frame lateness p50 / p99 / max (ms), every frame', 'p99 < 5, max ≤ 20', `${f2(c.lateness.all.p50)} / ${f2(c.lateness.all.p99)} / ${f1(c.lateness.all.max)}`, c.lateness.all.p99 < 5 && c.lateness.all.max <= 20);
    add(s, 'output frame lateness p50 / p99 / max (ms), after the ramp', 'p99 < 5, max ≤ 20', `${f2(c.lateness.steady.p50)} / ${f2(c.lateness.steady.p99)} / ${f1(c.lateness.steady.max)}`, c.lateness.steady.p99 < 5 && c.lateness.steady.max <= 20);
    add(s, 'frames later than 20 ms / frames received', '0', `${c.framesOver20ms} / ${c.dropped.framesReceived}`, c.framesOver20ms === 0);
    add(s, 'added latency p50 / p99 (ms): VAD stop → first bot frame', 'p50 < 25, p99 < 50', `${f1(c.addedLatencyMs.p50)} / ${f1(c.addedLatencyMs.p99)} (${c.addedLatencyMs.n} turns)`, c.addedLatencyMs.p50 < 25 && c.addedLatencyMs.p99 < 50);
    add(s, "daemon's own voice_to_voice p50 / p99 (ms, histogram)", '—', `${f1(c.daemonVoiceToVoiceMs.p50)} / ${f1(c.daemonVoiceToVoiceMs.p99)}`, null);
    add(s, 'daemon CPU: cores in total / CPU s per call-second', '< 1 core', `${f2(c.cpu.cores)} / ${c.cpu.secondsPerCallSecond.toFixed(4)}`, c.cpu.cores < 1);
    add(s, 'load generator meanwhile: callers / fakes process (cores)', '—', `${f2(c.benchCores.callers)} / ${f2(c.benchCores.fakes)}`, null);
    add(s, 'shared machine meanwhile: CPU pressure (PSI some) / load / hypervisor steal / daemon preempted', '—', `${f1(c.machine.cpuPressurePercent)} % / ${f2(c.machine.load1)} / ${f2(c.machine.stealCores)} cores / ${f1(c.daemonPreemptionsPerSecond)} per s`, null);
    add(s, "fakes' event-loop delay p99 / max (ms): replies the fakes sent late", '—', `${f1(c.fakesLoopDelayMs.p99)} / ${f1(c.fakesLoopDelayMs.max)}`, null);
    add(s, 'RSS per active call ((loaded − idle) / N)', '< 3 MB', `${mb(c.rss.perCallBytes)} (idle ${mb(c.rss.idleBytes)}, loaded ${mb(c.rss.loadedBytes)})`, c.rss.perCallBytes < 3e6);
    add(
      s,
      'dropped frames: daemon counter + missing at the client + pacing underruns (gaps mid-reply)',
      '0',
      `${c.dropped.daemonDroppedFrames} + ${c.dropped.clientMissingFrames} + ${c.dropped.underruns ?? 0}`,
      c.dropped.daemonDroppedFrames + c.dropped.clientMissingFrames + (c.dropped.underruns ?? 0) === 0,
    );
    add(s, 'call setup p50 / max (ms): connect → Deepgram session open', '—', `${f1(c.callSetupMs.p50)} / ${f1(c.callSetupMs.max)}`, null);
    add(s, 'turns measured / premature / no reply / calls failed', '—', `${c.turns.measured} / ${c.turns.premature} / ${c.turns.noReply} / ${c.failedToStart}`, c.turns.premature + c.turns.noReply + c.failedToStart === 0 ? null : false);
  }
  const ch = t.churn;
  if (ch !== undefined) {
    const s = `churn (${ch.lifecycles})`;
    add(s, 'lifecycles per second (errors)', '—', `${f1(ch.perSecond)} (${ch.errors})`, ch.errors === 0 ? null : false);
    const r = ch.rssAfterGc;
    add(s, 'RSS after the daemon\'s own major GCs: 1st half → 2nd half of the run (growth; slope)', 'within 10 %', `${mb(r.baselineBytes)} → ${mb(r.afterBytes)} (${r.growthPercent >= 0 ? '+' : ''}${f1(r.growthPercent)} %; ${mb(r.slopeBytesPer1000)} per 1000)`, Math.abs(r.growthPercent) <= 10);
    add(s, 'RSS idle before → idle after (settle, no GC forced)', '—', `${mb(ch.before.rssBytes)} → ${mb(ch.after.rssBytes)} (${ch.growth.rssPercent >= 0 ? '+' : ''}${f1(ch.growth.rssPercent)} %)`, null);
    const g = ch.heapAfterGc;
    add(s, 'heap (old generation) after the daemon\'s own major GCs: 1st → 2nd half (growth; slope)', 'within 5 MB', `${mb(g.baselineBytes)} → ${mb(g.afterBytes)} (${mb(g.growthBytes)}; ${mb(g.slopeBytesPer1000)} per 1000)`, Math.abs(g.growthBytes) <= 5e6);
    add(s, 'live calls after; open fds / sockets delta (after settle)', '0; 0 / 0', `${ch.after.activeCalls}; ${ch.growth.fds} / ${ch.growth.sockets}`, ch.after.activeCalls === 0 && ch.growth.fds <= 0 && ch.growth.sockets <= 0);
  }
  const micro = t.micro ?? [];
  const vad = micro.find((m) => m.kind === 'vad');
  for (const m of micro) {
    if (m.kind === 'resampler') {
      const used = m.quality === t.quality;
      const ok = m.figures.up8to16 >= 300 && m.figures.down16to8 >= 300;
      add(
        'resampler',
        `${m.quality}${used ? ' (the default)' : ''}: × real time 8→16 / 16→8 kHz (20 ms chunks)`,
        used ? '≥ 300×' : '—',
        `${m.figures.up8to16.toFixed(0)}× / ${m.figures.down16to8.toFixed(0)}×`,
        used ? ok : null,
      );
      add('resampler', `${m.quality}: create p50 / max (ms); RSS per live converter`, '—', `${f2(m.figures.createMsP50)} / ${f2(m.figures.createMsMax)}; ${mb(m.figures.rssPerConverter)}`, null);
    }
  }
  if (vad !== undefined && vad.kind === 'vad') {
    add('vad', 'Silero VAD CPU per 512-sample window (ms), one call', '≤ 0.3', vad.figures.msPerWindow.toFixed(3), vad.figures.msPerWindow <= 0.3);
  }
  const vadStreams = micro.find((m) => m.kind === 'vad-streams');
  if (vadStreams !== undefined && vadStreams.kind === 'vad-streams') {
    add('vad', `Silero VAD CPU per window (ms), ${vadStreams.figures.streams ?? 0} calls at once`, '≤ 0.3', vadStreams.figures.msPerWindow.toFixed(3), vadStreams.figures.msPerWindow <= 0.3);
  }
  const ours = micro.find((m) => m.kind === 'resampler' && m.quality === 'sinc_fastest');
  for (const m of micro) {
    if (m.kind === 'peer-resampler') {
      if (!m.available) add('peers', 'LiveKit @livekit/rtc-node AudioResampler', '—', `not run: ${m.error}`, null);
      else {
        for (const [q, fig] of Object.entries(m.figures)) {
          const ratio = ours !== undefined && ours.kind === 'resampler' ? ` → ours (sinc_fastest) ${f2(ours.figures.up8to16 / fig.up8to16)}× / ${f2(ours.figures.down16to8 / fig.down16to8)}× theirs` : '';
          add('peers', `LiveKit AudioResampler ${q}: × real time 8→16 / 16→8`, '—', `${fig.up8to16.toFixed(0)}× / ${fig.down16to8.toFixed(0)}×${ratio}`, null);
        }
      }
    }
    if (m.kind === 'peer-vad') {
      if (!m.available) add('peers', 'LiveKit @livekit/agents-plugin-silero', '—', `not run: ${m.error}`, null);
      else {
        const single = vad !== undefined && vad.kind === 'vad' ? `${f2(vad.figures.msPerWindow / m.figures.msPerWindow)}×` : 'n/a';
        const many = vadStreams !== undefined && vadStreams.kind === 'vad-streams' ? `${f2(vadStreams.figures.msPerWindow / m.figures.msPerWindow)}×` : 'n/a';
        const ratio = ` → ours costs ${single} theirs for one call, ${many} at 100 calls (batched)`;
        add('peers', 'LiveKit Silero (plugin model) CPU per window (ms)', '—', `${m.figures.msPerWindow.toFixed(3)}${ratio}`, null);
      }
    }
  }
  const r = t.rpc;
  if (r !== undefined) {
    add('rpc', 'create p50 / p99 (ms)', '—', `${f2(r.sequential.createMs.p50)} / ${f2(r.sequential.createMs.p99)}`, null);
    add('rpc', 'get p50 / p99 (ms)', '—', `${f2(r.sequential.getMs.p50)} / ${f2(r.sequential.getMs.p99)}`, null);
    add('rpc', 'create + get round trip p50 / p99 (ms)', '—', `${f2(r.sequential.createPlusGetMs.p50)} / ${f2(r.sequential.createPlusGetMs.p99)}`, null);
    add('rpc', `requests per second (${r.throughput.workers} workers, create+get+stop)`, '—', `${r.throughput.requestsPerSecond.toFixed(0)} req/s (${r.throughput.errors} errors)`, r.throughput.errors === 0 ? null : false);
  }
  return rows;
}

/** Plain-text table for the terminal; markdown-compatible (pipes), so it can be pasted into BENCHMARKS.md. */
export function formatRows(rows: Row[]): string {
  const verdict = (ok: boolean | null): string => (ok === null ? '' : ok ? 'met' : 'MISSED');
  const header = ['Section', 'Figure', 'Target', 'Measured', ''];
  const cells = rows.map((r) => [r.section, r.figure, r.target, r.measured, verdict(r.ok)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: string[]): string => `| ${c.map((x, i) => x.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}
