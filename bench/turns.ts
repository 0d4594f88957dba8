// Turn-taking benchmark (issue 13, SPEC §14): the daemon's real pipeline (Silero VAD, resamplers, the shared 20 ms
// output clock, every processor) with provider fakes at realistic delays (bench/turns-fakes.ts), driven by a caller
// that plays recorded Asterisk prompts in real time: plain turns, turns with a mid-sentence pause, barge-ins with
// words, and short and long noises under the bot. Each scenario runs in the classic mode (fixed stop_secs, cancel
// at the VAD start) and with the issue-13 turn-taking, side by side.
//   npx tsx bench/turns.ts [--rounds N] [--out file.json]
// TURNS_ONLY=<text> runs only the scenarios whose name contains it; TURNS_DEBUG=1 prints every turn record.
// Figures: barge-in (speech onset → the last bot frame before the output stops) and its parts, false interruptions
// and recoveries (frames lost or repeated), voice-to-voice (speech end → first reply frame), premature replies,
// and the pipeline's own share of each reply.

import { readFileSync, writeFileSync } from 'node:fs';
import { OutputClock } from '../src/audio/clock.js';
import { Resampler } from '../src/audio/resampler.js';
import { readWav } from '../src/audio/wav.js';
import { createLogger } from '../src/log.js';
import { ConversationContext } from '../src/pipeline/context.js';
import { DEFAULT_TURN_SETTINGS, type TurnSettings } from '../src/pipeline/end-of-turn.js';
import { NULL_OBSERVER } from '../src/pipeline/observer.js';
import { pipelineOwnMs, type TurnRecord } from '../src/pipeline/turn-record.js';
import { VoicePipeline } from '../src/pipeline/voice-pipeline.js';
import { DEFAULT_VAD_PARAMS, SileroVad } from '../src/providers/vad/silero.js';
import { machineInfo, load } from './lib/machine.js';
import { quantileSorted, round } from './lib/stats.js';
import { DelayedLlm, DelayedTts, RecordingWire, ScriptedStt, delay, type WireFrame } from './turns-fakes.js';

const SOUNDS = '/usr/share/asterisk/sounds/en';
const FRAME = 160; // 20 ms at 8 kHz
/** A 20 ms frame this loud (RMS ≈ −40 dBFS) is speech: the caller's own onset and end of speech. */
const SPEECH_RMS = 328;

interface Part {
  samples: Int16Array;
  /** What the STT hears; null: a noise with no words. */
  text: string | null;
  pauseAfterMs: number;
}
type Kind = 'turn' | 'pause' | 'barge' | 'noise';
interface Scenario {
  name: string;
  kind: Kind;
  parts: Part[];
}

/** A prompt cut to its speech plus 40 ms either side: the recordings' own silences would lengthen the pauses. */
function prompt(name: string): Int16Array {
  const wav = readWav(readFileSync(`${SOUNDS}/${name}.wav`));
  if (wav.sampleRate !== 8000) throw new Error(`${name}.wav is not 8 kHz`);
  const [first, last] = loudRange(wav.samples);
  return wav.samples.slice(Math.max(0, first - 320), last + 320);
}

/** First and last sample of the 20 ms frames (from sample 0) whose RMS says speech. */
function loudRange(s: Int16Array): [number, number] {
  let first = -1;
  let last = -1;
  for (let off = 0; off < s.length; off += FRAME) {
    const end = Math.min(s.length, off + FRAME);
    let sum = 0;
    for (let i = off; i < end; i++) sum += (s[i] as number) ** 2;
    if (Math.sqrt(sum / (end - off)) > SPEECH_RMS) {
      if (first < 0) first = off;
      last = end - 1;
    }
  }
  return [Math.max(0, first), Math.max(0, last)];
}

/** `ms` of a prompt from its onset: a syllable or two, speech-like to the VAD, with no words for the STT. */
function snippet(name: string, ms: number): Int16Array {
  const s = prompt(name);
  const [first] = loudRange(s);
  return s.slice(first, first + (ms * 8000) / 1000);
}

function scenarios(): Scenario[] {
  const say = (name: string, text: string, pauseAfterMs = 0): Part => ({ samples: prompt(name), text, pauseAfterMs });
  return [
    { name: 'turn hello-world', kind: 'turn', parts: [say('hello-world', 'Hello world.')] },
    { name: 'turn auth-thankyou', kind: 'turn', parts: [say('auth-thankyou', 'Thank you.')] },
    { name: 'turn please-try-again', kind: 'turn', parts: [say('please-try-again', 'Please try again.')] },
    { name: 'turn vm-goodbye', kind: 'turn', parts: [say('vm-goodbye', 'Goodbye.')] },
    { name: 'pause you-have…messages', kind: 'pause', parts: [say('vm-youhave', 'You have', 600), say('vm-messages', 'messages.')] },
    { name: 'pause to-call…press', kind: 'pause', parts: [say('to-call-this-number', 'To call this number', 500), say('vm-press', 'press.')] },
    { name: 'pause press-for…password', kind: 'pause', parts: [say('vm-press', 'Press', 550), say('vm-password', 'password.')] },
    { name: 'barge hello-world', kind: 'barge', parts: [say('hello-world', 'Hello world.')] },
    { name: 'barge please-try-again', kind: 'barge', parts: [say('please-try-again', 'Please try again.')] },
    { name: 'barge auth-thankyou', kind: 'barge', parts: [say('auth-thankyou', 'Thank you.')] },
    { name: 'barge vm-goodbye', kind: 'barge', parts: [say('vm-goodbye', 'Goodbye.')] },
    { name: 'noise 120 ms', kind: 'noise', parts: [{ samples: snippet('auth-thankyou', 120), text: null, pauseAfterMs: 0 }] },
    { name: 'noise 350 ms', kind: 'noise', parts: [{ samples: snippet('auth-thankyou', 350), text: null, pauseAfterMs: 0 }] },
    { name: 'noise 80 ms', kind: 'noise', parts: [{ samples: snippet('vm-goodbye', 80), text: null, pauseAfterMs: 0 }] },
    { name: 'noise 250 ms', kind: 'noise', parts: [{ samples: snippet('hello-world', 250), text: null, pauseAfterMs: 0 }] },
  ];
}

const LONG_GREETING = ['This is sentence number 1 of a long greeting. This', ...Array.from({ length: 7 }, (_, i) => ` is sentence number ${i + 2} of a long greeting.${i < 6 ? ' This' : ''}`)];
const SHORT_GREETING = ['Hello. How', ' can I help?'];

interface Outcome {
  scenario: string;
  kind: Kind;
  bargeInMs: number | null;
  /** Caller onset → VAD onset callback, → VAD start, → output paused/cut (from the turn record). */
  onsetToVadOnsetMs: number | null;
  onsetToVadStartMs: number | null;
  onsetToPauseMs: number | null;
  interruption: 'confirmed' | 'false' | null;
  resumed: boolean;
  framesLost: number;
  framesRepeated: number;
  voiceToVoiceMs: number | null;
  premature: boolean;
  ownMs: number | null;
}

/** A caller on the wire: one 8 kHz frame every 20 ms (silence unless something is queued), each push timed. */
class Caller {
  private readonly queue: Array<{ pcm: Int16Array; onPush?: (at: number) => void }> = [];
  private timer: NodeJS.Timeout | null = null;
  private next = performance.now();
  private readonly silence = new Int16Array(FRAME);

  constructor(private readonly pipeline: VoicePipeline) {}

  start(): void {
    const step = (): void => {
      const item = this.queue.shift();
      const pcm = item?.pcm ?? this.silence;
      this.pipeline.pushAudio(Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength));
      item?.onPush?.(performance.now());
      this.next += 20;
      this.timer = setTimeout(step, Math.max(0, this.next - performance.now()));
    };
    this.timer = setTimeout(step, 20);
  }

  /** Queues audio; `marks` are sample indices whose frame's push time is reported. */
  say(samples: Int16Array, marks: Map<number, (at: number) => void>): void {
    for (let off = 0; off < samples.length; off += FRAME) {
      const pcm = new Int16Array(FRAME);
      pcm.set(samples.subarray(off, Math.min(samples.length, off + FRAME)));
      const hits = [...marks].filter(([i]) => i >= off && i < off + FRAME).map(([, f]) => f);
      this.queue.push({ pcm, onPush: (at) => hits.forEach((f) => f(at)) });
    }
  }

  pause(ms: number): void {
    for (let i = 0; i < ms / 20; i++) this.queue.push({ pcm: this.silence });
  }

  get idle(): boolean {
    return this.queue.length === 0;
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
  }
}

const epoch = (perf: number): number => performance.timeOrigin + perf;

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) return false;
    await delay(10);
  }
  return true;
}

async function runScenario(s: Scenario, turns: TurnSettings | undefined, clock: OutputClock): Promise<Outcome> {
  const wire = new RecordingWire();
  const unregister = clock.register(wire);
  const stt = new ScriptedStt();
  const ctrl = new AbortController();
  const pipeline = await VoicePipeline.create({
    context: new ConversationContext([{ role: 'system', content: 'bench' }]),
    llm: new DelayedLlm(s.kind === 'barge' || s.kind === 'noise' ? LONG_GREETING : SHORT_GREETING),
    tools: null,
    stt: { provider: stt, language: '' },
    tts: { provider: new DelayedTts(), voiceId: '', language: '' },
    vad: { ...DEFAULT_VAD_PARAMS },
    ...(turns !== undefined ? { turns } : {}),
    createVad: (params, events) => SileroVad.create({ params, ...events }),
    createResampler: (from, to) => Resampler.create(from, to, 'sinc_fastest'),
    sink: wire,
    inputRate: 8000,
    observer: NULL_OBSERVER,
    signal: ctrl.signal,
    log: createLogger('silent'),
    onEndCall: () => undefined,
  });
  pipeline.setInputRate(8000);
  const caller = new Caller(pipeline);
  caller.start();
  pipeline.start();
  const botFrames = (): WireFrame[] => wire.written.filter((f) => f.seq >= 0);
  try {
    await until(() => botFrames().length > 0, 5000);
    if (s.kind === 'turn' || s.kind === 'pause') {
      // The greeting is over and the line has been quiet for a while.
      await until(() => wire.queuedFrames === 0 && wire.written.slice(-40).every((f) => f.seq < 0), 8000);
    } else {
      await delay(800);
    }
    let onsetAt = 0;
    let endAt = 0;
    const partEnds: number[] = [];
    for (const [k, part] of s.parts.entries()) {
      const [first, last] = loudRange(part.samples);
      const marks = new Map<number, (at: number) => void>();
      marks.set(0, () => {
        if (part.text !== null) stt.speech(part.text, ((last - first) / 8000) * 1000);
      });
      marks.set(first, (at) => {
        if (k === 0) onsetAt = at;
      });
      marks.set(last, (at) => {
        partEnds.push(at);
        endAt = at;
      });
      caller.say(part.samples, marks);
      if (part.pauseAfterMs > 0) caller.pause(part.pauseAfterMs);
    }
    await until(() => caller.idle && endAt > 0, 15_000);
    await delay(s.kind === 'noise' ? 1800 : 2500);
    if (process.env.TURNS_DEBUG !== undefined) {
      const t0 = epoch(onsetAt);
      const rel = (x: number | null): number | null => (x === null ? null : Math.round(x - t0));
      process.stderr.write(`${s.name}: parts end ${partEnds.map((e) => Math.round(e - onsetAt)).join(',')}\n`);
      for (const r of pipeline.turns()) {
        process.stderr.write(`  ${JSON.stringify(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, k.endsWith('At') ? rel(v as number | null) : v])))}\n`);
      }
      const bot = wire.written.filter((f) => f.seq >= 0 && f.at > onsetAt);
      process.stderr.write(`  bot frames after onset: ${bot.length}, first at ${bot[0] === undefined ? '-' : Math.round(bot[0].at - onsetAt)}\n`);
    }
    return analyse(s, wire.written, pipeline.turns(), onsetAt, partEnds, endAt);
  } finally {
    caller.stop();
    ctrl.abort();
    await pipeline.close();
    unregister();
  }
}

function analyse(s: Scenario, written: WireFrame[], records: TurnRecord[], onsetAt: number, partEnds: number[], endAt: number): Outcome {
  const out: Outcome = {
    scenario: s.name,
    kind: s.kind,
    bargeInMs: null,
    onsetToVadOnsetMs: null,
    onsetToVadStartMs: null,
    onsetToPauseMs: null,
    interruption: null,
    resumed: false,
    framesLost: 0,
    framesRepeated: 0,
    voiceToVoiceMs: null,
    premature: false,
    ownMs: null,
  };
  const first = records.find((r) => r.onsetAt !== null && r.onsetAt >= epoch(onsetAt) - 50);
  if (first !== undefined) {
    const o = epoch(onsetAt);
    out.onsetToVadOnsetMs = first.onsetAt === null ? null : first.onsetAt - o;
    out.onsetToVadStartMs = first.vadStartAt === null ? null : first.vadStartAt - o;
    out.onsetToPauseMs = first.bargeInAt === null ? null : first.bargeInAt - o;
    // The VAD may drop and re-detect the onset inside the first word: the barge-in is what any of them became.
    const since = records.filter((r) => r.onsetAt !== null && r.onsetAt >= o - 50);
    out.interruption = since.some((r) => r.interruption === 'confirmed') ? 'confirmed' : first.interruption;
  }
  if (s.kind === 'barge' || s.kind === 'noise') {
    // The bot was talking at the onset: where did its output stop, and did it come back where it stopped?
    const i = written.findIndex((f, j) => f.at >= onsetAt && f.seq < 0 && (written[j - 1]?.seq ?? -1) >= 0);
    if (i > 0) {
      const lastBot = written[i - 1] as WireFrame;
      out.bargeInMs = lastBot.at - onsetAt;
      const back = written.slice(i).find((f) => f.seq >= 0);
      if (back !== undefined && s.kind === 'noise') {
        out.resumed = true;
        out.framesLost = Math.max(0, back.seq - lastBot.seq - 1);
        out.framesRepeated = Math.max(0, lastBot.seq - back.seq + 1);
      }
    }
  }
  if (s.kind !== 'noise') {
    const reply = written.find((f) => f.seq >= 0 && f.at > endAt);
    if (reply !== undefined) out.voiceToVoiceMs = reply.at - endAt;
    // A reply that started while the caller was still to go on (after the first part, before the last one ended).
    const firstPartEnd = partEnds[0] ?? endAt;
    if (s.kind !== 'barge') out.premature = written.some((f) => f.seq >= 0 && f.at > firstPartEnd && f.at <= endAt);
    const answered = records.find((r) => r.text !== '' && r.firstBotFrameAt !== null);
    if (answered !== undefined) out.ownMs = pipelineOwnMs(answered);
  }
  return out;
}

function pct(values: Array<number | null>, q: number): number | null {
  const v = values.filter((x): x is number => x !== null).sort((a, b) => a - b);
  return v.length === 0 ? null : round(quantileSorted(v, q), 0);
}

function summarise(outcomes: Outcome[]): Record<string, number | string | null> {
  const barge = outcomes.filter((o) => o.kind === 'barge');
  const noise = outcomes.filter((o) => o.kind === 'noise');
  const replies = outcomes.filter((o) => o.kind === 'turn' || o.kind === 'pause' || o.kind === 'barge');
  const noisePaused = noise.filter((o) => o.bargeInMs !== null);
  return {
    'barge-in p50 ms': pct(barge.map((o) => o.bargeInMs), 0.5),
    'barge-in p95 ms': pct(barge.map((o) => o.bargeInMs), 0.95),
    'onset → VAD onset p50 ms': pct(barge.map((o) => o.onsetToVadOnsetMs), 0.5),
    'onset → VAD start p50 ms': pct(barge.map((o) => o.onsetToVadStartMs), 0.5),
    'onset → output paused p50 ms': pct(barge.map((o) => o.onsetToPauseMs), 0.5),
    'barge-ins confirmed': `${barge.filter((o) => o.interruption === 'confirmed' || (o.interruption === null && o.bargeInMs !== null)).length}/${barge.length}`,
    'noises that stopped the bot': `${noisePaused.length}/${noise.length}`,
    'false interruptions (resumed)': `${noise.filter((o) => o.resumed).length}/${noise.length}`,
    'bot cut by a noise': `${noise.filter((o) => o.bargeInMs !== null && !o.resumed).length}/${noise.length}`,
    'frames lost/repeated on resume': `${noise.reduce((a, o) => a + o.framesLost, 0)}/${noise.reduce((a, o) => a + o.framesRepeated, 0)}`,
    'voice-to-voice p50 ms': pct(replies.map((o) => o.voiceToVoiceMs), 0.5),
    'voice-to-voice p95 ms': pct(replies.map((o) => o.voiceToVoiceMs), 0.95),
    'premature replies': `${outcomes.filter((o) => o.premature).length}/${outcomes.filter((o) => o.kind === 'pause' || o.kind === 'turn').length}`,
    'pipeline own p50 ms': pct(replies.map((o) => o.ownMs), 0.5),
    'pipeline own p95 ms': pct(replies.map((o) => o.ownMs), 0.95),
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const arg = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const rounds = Number(arg('--rounds') ?? '3');
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a whole number ≥ 1');
  const outFile = arg('--out') ?? 'bench/turns-results.json';
  const machine = machineInfo();
  await SileroVad.preload();
  const clock = new OutputClock();
  const modes: Array<[string, TurnSettings | undefined]> = [
    ['classic', undefined],
    ['issue 13', { ...DEFAULT_TURN_SETTINGS }],
  ];
  const results: Record<string, { outcomes: Outcome[]; summary: Record<string, number | string | null> }> = {};
  try {
    for (const [mode, turns] of modes) {
      const outcomes: Outcome[] = [];
      for (let r = 0; r < rounds; r++) {
        // The scenarios of a round run at once, staggered so their VAD windows and ticks fall at different phases.
        const only = process.env.TURNS_ONLY;
        const list = scenarios().filter((x) => only === undefined || x.name.includes(only));
        const round = await Promise.all(list.map(async (s, i) => {
          await delay(i * 173);
          return runScenario(s, turns, clock);
        }));
        outcomes.push(...round);
        process.stderr.write(`${mode}: round ${r + 1}/${rounds} done\n`);
      }
      results[mode] = { outcomes, summary: summarise(outcomes) };
    }
  } finally {
    clock.close();
  }
  machine.loadAtEnd = load();
  const keys = Object.keys(results[modes[0]?.[0] ?? ''] ?.summary ?? {});
  const width = Math.max(...keys.map((k) => k.length));
  const lines = [`turn-taking: ${rounds} round(s) × ${scenarios().length} scenarios per mode; ${machine.cpuModel}, ${machine.cores} cores, load ${machine.loadAtStart.join(' ')} → ${machine.loadAtEnd.join(' ')}`];
  lines.push(`${''.padEnd(width)}  ${modes.map(([m]) => m.padStart(12)).join('')}`);
  for (const k of keys) lines.push(`${k.padEnd(width)}  ${modes.map(([m]) => String(results[m]?.summary[k] ?? '—').padStart(12)).join('')}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  writeFileSync(outFile, `${JSON.stringify({ machine, delays: { sttFinalMs: 300, llmFirstTokenMs: 350, ttsFirstAudioMs: 150 }, results }, null, 2)}\n`);
  process.stdout.write(`written to ${outFile}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
