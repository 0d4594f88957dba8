// One call's pipeline, assembled (SPEC §3.1): transport in → resample to 16 kHz → VAD → STT → user turns → LLM
// (+tools) → sentences → TTS → assistant output (resample to the wire rate, paced sink). Stages the call does not
// need are left out. It starts before the caller's rate is known (the greeting plays on a silent line) and follows
// that rate when the first audio arrives. Its own AbortController, aborted by close(), cancels every provider
// request, so the providers stop in the call's teardown order and not before.

import { RESAMPLER_HOLD_BACK_MS, type Resampler } from '../audio/resampler.js';
import { SwitchableResampler } from '../audio/switchable-resampler.js';
import type { Logger } from '../log.js';
import type { LlmClient, SttProvider, TtsProvider, TtsSession } from '../providers/types.js';
import { AssistantOutput, toInt16 } from './assistant-output.js';
import type { BotAudioSink } from './audio-sink.js';
import { BotState } from './bot-state.js';
import type { ConversationContext } from './context.js';
import type { Direction, Frame } from './frames.js';
import { SttProcessor, VadProcessor, vadLeadSamples, type VoiceActivityDetector } from './input-processors.js';
import { LlmProcessor, type ToolExecutor } from './llm-processor.js';
import type { PipelineObserver } from './observer.js';
import { Pipeline, type FrameProcessor } from './processor.js';
import { SentenceProcessor } from './sentence-processor.js';
import { TtsProcessor } from './tts-processor.js';
import { UserTurnAggregator } from './turns.js';
import { EARLY_STOP_SECS, stopBounds, type TurnSettings } from './end-of-turn.js';
import { SpeculationGate } from './speculation-gate.js';
import { TurnTracker, type TurnRecord } from './turn-record.js';

export const PIPELINE_RATE = 16_000;

export interface VadParams {
  confidence: number;
  start_secs: number;
  stop_secs: number;
  min_volume: number;
}

export interface VoicePipelineOptions {
  context: ConversationContext;
  llm: LlmClient;
  tools: ToolExecutor | null;
  /** STT (with VAD) for calls with media and an stt_type. */
  stt: { provider: SttProvider; language: string } | null;
  /** TTS for calls with media and a tts_type. */
  tts: { provider: TtsProvider; voiceId: string; language: string } | null;
  vad: VadParams;
  /** Caller audio per STT message (ms; default one wire frame, 20): see SttProcessor. */
  sttChunkMs?: number;
  /** Reversible barge-in, adaptive endpointing and preemptive generation (issue 13); absent: classic turns. */
  turns?: TurnSettings;
  createVad(
    params: VadParams,
    events: {
      onSpeechStart(): void;
      onSpeechStop(atSample?: number): void;
      onSpeechOnset(): void;
      onOnsetDropped(): void;
      onSpeechPause?(): void;
      onSpeechResume?(): void;
    },
    /** `pauseSecs`: report pauses this long inside speech (0: none). */
    options?: { pauseSecs: number },
  ): Promise<VoiceActivityDetector>;
  createResampler(fromRate: number, toRate: number): Promise<Resampler>;
  /** The call's paced output; null for text-only sessions. */
  sink: BotAudioSink | null;
  /**
   * The caller's audio rate to prepare the input for: known, or expected (Audiosocket: 8 kHz) until
   * setInputRate() says what the first audio was; null to prepare nothing.
   */
  inputRate: number | null;
  observer: PipelineObserver;
  /** Cancels the build: providers being opened are closed again. The running pipeline is ended by close(). */
  signal: AbortSignal;
  log: Logger;
  /** The pipeline asks to end the call (stop_service, a provider that failed for good). */
  onEndCall(reason: Extract<Frame, { type: 'end_call' }>['reason']): void;
}

/** The VAD stream's lead for a call's input resampler (none when the wire is already 16 kHz). */
export function vadLeadFor(inputResampler: Resampler | null): number {
  if (inputResampler === null || inputResampler.passthrough) return 0;
  const holdBack = Math.round((RESAMPLER_HOLD_BACK_MS[inputResampler.quality] * PIPELINE_RATE) / 1000);
  // Asterisk sends 20 ms frames: 320 samples once resampled to 16 kHz.
  return vadLeadSamples(holdBack, PIPELINE_RATE / 50);
}

/** Caller audio held while the input converter for its rate is being made: 200 ms of 20 ms frames. */
const MAX_HELD_INPUT = 10;

interface Parts {
  pipeline: Pipeline;
  opened: Array<() => Promise<void> | void>;
  abort: AbortController;
  hasInput: boolean;
  hasAudioOut: boolean;
  inputResampler: Resampler | null;
  output: SwitchableResampler | null;
  options: VoicePipelineOptions;
  tracker: TurnTracker;
  /** Sends the caller audio the STT processor still buffers (before the providers are cancelled). */
  flushInput: () => void;
}

export class VoicePipeline {
  private closed: Promise<void> | null = null;
  /** The input converter for the caller's rate; null = the rate is the pipeline's (or no input side). */
  private inputResampler: Resampler | null;
  /** Whether caller audio can go through now (the rate is known and its converter exists). */
  private inputReady: boolean;
  private readonly held: Buffer[] = [];
  private rateKnown = false;
  private rateSwitch: Promise<void> | null = null;

  private constructor(private readonly parts: Parts) {
    this.inputResampler = parts.inputResampler;
    this.inputReady = false;
  }

  /** The call's user turns so far, oldest first (bounded; see turn-record.ts). */
  turns(): TurnRecord[] {
    return this.parts.tracker.records();
  }

  /** The latest turn (a copy), or null before the first. */
  latestTurn(): TurnRecord | null {
    return this.parts.tracker.latest();
  }

  /** Opens the providers and builds the chain. On failure (or a cancelled build) everything opened is closed. */
  static async create(o: VoicePipelineOptions): Promise<VoicePipeline> {
    const opened: Array<() => Promise<void> | void> = [];
    const abort = new AbortController();
    const cancel = (): void => abort.abort(o.signal.reason);
    o.signal.addEventListener('abort', cancel, { once: true });
    const signal = abort.signal;
    /** The TTS session opening alongside the STT stream (a TLS or WebSocket handshake each): not yet in `opened`. */
    let ttsOpening: Promise<TtsSession> | null = null;
    try {
      if (o.signal.aborted) throw new Error('the pipeline build was cancelled');
      const bot = new BotState();
      const tracker = new TurnTracker(o.observer);
      const gate = new SpeculationGate(o.observer);
      // Adaptive endpointing: the VAD reports pauses early and the turn aggregator does the rest of the wait.
      const bounds = stopBounds(o.vad.stop_secs, o.turns ?? { minStopSecs: Number.NaN, maxStopSecs: Number.NaN });
      const vadStopSecs = bounds.min < o.vad.stop_secs ? Math.min(EARLY_STOP_SECS, bounds.min) : o.vad.stop_secs;
      // Fixed endpointing (min = stop): the VAD's stop ends the turn as in the classic behaviour; with preemptive
      // replies it also reports the early pause, so the reply is ready (held) when the stop comes.
      const pauseSecs = o.turns?.preemptive === true && vadStopSecs === o.vad.stop_secs ? EARLY_STOP_SECS : 0;
      const processors: FrameProcessor[] = [];
      let inputResampler: Resampler | null = null;
      let vadProgress: { analysed(): number } | undefined;
      let flushInput = (): void => undefined;
      const hasMedia = o.sink !== null;
      const hasInput = o.stt !== null && hasMedia;
      const audioOut = o.tts !== null && hasMedia;
      if (audioOut && o.tts !== null) {
        ttsOpening = o.tts.provider.open({ voiceId: o.tts.voiceId, language: o.tts.language, signal, log: o.log });
        // Awaited below, or closed in the catch: never an unhandled rejection meanwhile.
        ttsOpening.catch(() => undefined);
      }

      if (o.stt !== null && hasInput) {
        if (o.inputRate !== null && o.inputRate !== PIPELINE_RATE) {
          inputResampler = await o.createResampler(o.inputRate, PIPELINE_RATE);
          const r = inputResampler;
          opened.push(() => r.close());
        }
        const vadProc = new VadProcessor(vadLeadFor(inputResampler));
        const vadParams = { confidence: o.vad.confidence, start_secs: o.vad.start_secs, stop_secs: vadStopSecs, min_volume: o.vad.min_volume };
        const detector = await o.createVad(vadParams, {
          onSpeechStart: () => vadProc.speechStarted(),
          onSpeechStop: (atSample) => vadProc.push({ type: 'user_stopped_speaking', ...(atSample !== undefined ? { atSample } : {}) }),
          onSpeechOnset: () => vadProc.push({ type: 'user_onset' }),
          onOnsetDropped: () => vadProc.push({ type: 'user_onset_dropped' }),
          onSpeechPause: () => vadProc.push({ type: 'user_paused' }),
          onSpeechResume: () => vadProc.push({ type: 'user_resumed' }),
        }, { pauseSecs });
        vadProc.attach(detector);
        vadProgress = progressOf(detector);
        opened.push(() => vadProc.close());
        const sttProc = new SttProcessor(Math.round(((o.sttChunkMs ?? 20) * PIPELINE_RATE) / 1000));
        let fatal = false;
        const stream = await o.stt.provider.open({
          language: o.stt.language,
          signal,
          log: o.log,
          onTranscript: (t) => sttProc.transcript(t.text, t.final),
          onFatal: (err) => {
            if (fatal || signal.aborted) return;
            fatal = true;
            o.observer.providerError('stt', o.stt?.provider.name ?? 'stt', err);
            sttProc.failed();
          },
          onError: (err) => o.observer.providerError('stt', o.stt?.provider.name ?? 'stt', err),
        });
        sttProc.attach(stream);
        flushInput = () => sttProc.flush();
        opened.push(() => sttProc.close());
        processors.push(vadProc, sttProc);
      }

      processors.push(
        new UserTurnAggregator(o.context, bot, gate, {
          audio: audioOut,
          stopSecs: o.vad.stop_secs,
          vadStopSecs,
          ...(o.turns !== undefined ? { turns: o.turns } : {}),
          tracker,
          gate,
          ...(vadProgress !== undefined ? { vadProgress } : {}),
        }),
      );
      const llmProc = new LlmProcessor(o.llm, o.context, o.tools, bot, gate, signal, tracker);
      opened.push(() => llmProc.close());
      processors.push(llmProc, new SentenceProcessor(gate));

      let outputResampler: SwitchableResampler | null = null;
      if (ttsOpening !== null && o.sink !== null) {
        const session = await ttsOpening;
        ttsOpening = null;
        opened.push(() => session.close());
        const ttsProc = new TtsProcessor(session, gate, signal, tracker);
        opened.push(() => ttsProc.close());
        processors.push(ttsProc);
        // Always a converter object, passthrough while the rates match: the output rate may change later.
        outputResampler = new SwitchableResampler(await o.createResampler(session.sampleRate, o.sink.sampleRate));
      }
      const output = new AssistantOutput(o.context, bot, gate, audioOut ? o.sink : null, outputResampler, tracker);
      opened.push(() => output.close());
      processors.push(output);
      if (o.signal.aborted) throw new Error('the pipeline build was cancelled');

      const exit = (frame: Frame, direction: Direction): void => {
        if (direction === 'up' && frame.type === 'end_call') o.onEndCall(frame.reason);
      };
      const pipeline = new Pipeline(processors, exit);
      return new VoicePipeline({ pipeline, opened, abort, hasInput, hasAudioOut: audioOut, inputResampler, output: outputResampler, options: o, tracker, flushInput });
    } catch (err) {
      abort.abort(err);
      if (ttsOpening !== null) opened.push(async () => (await ttsOpening)?.close());
      for (const close of opened.reverse()) {
        try {
          await close();
        } catch {
          // Already failing: the first error is the one reported.
        }
      }
      throw err;
    } finally {
      o.signal.removeEventListener('abort', cancel);
    }
  }

  /** The bot speaks first: one LLM run on the initial context. */
  start(): void {
    this.feed({ type: 'llm_run', audio: this.parts.hasAudioOut });
  }

  /**
   * The caller's first audio came at `rate`: the input converter follows it (made now when the expected rate was
   * wrong; audio meanwhile is held, bounded), and so does the output when the sink answers in the caller's rate.
   * Once per pipeline; later calls are ignored.
   */
  setInputRate(rate: number): void {
    if (this.rateKnown || this.closed !== null) return;
    this.rateKnown = true;
    this.rateSwitch = this.switchRates(rate).catch((err: unknown) => {
      if (this.closed === null) this.parts.options.log.error({ err }, 'could not follow the caller audio rate');
    });
  }

  /** Caller audio at the caller's rate (s16le mono), after setInputRate(). */
  pushAudio(pcm: Buffer): void {
    if (this.closed !== null || pcm.length < 2 || !this.parts.hasInput || !this.rateKnown) return;
    if (!this.inputReady) {
      if (this.held.length >= MAX_HELD_INPUT) this.held.shift();
      this.held.push(Buffer.from(pcm));
      return;
    }
    const samples = toInt16(pcm);
    this.feed({ type: 'audio_in', pcm: this.inputResampler === null ? samples : this.inputResampler.process(samples) });
  }

  pushDtmf(digit: string): void {
    this.feed({ type: 'dtmf', digit });
  }

  injectMessage(text: string, runImmediately: boolean, audioResponse: boolean): void {
    this.feed({ type: 'user_text', text, runImmediately, audioResponse });
  }

  private feed(frame: Frame): void {
    if (this.closed === null) this.parts.pipeline.feed(frame);
  }

  private async switchRates(rate: number): Promise<void> {
    const { options: o, output } = this.parts;
    if (this.parts.hasInput) {
      const current = this.inputResampler;
      const fits = rate === PIPELINE_RATE ? current === null : current?.fromRate === rate;
      if (!fits) {
        const next = rate === PIPELINE_RATE ? null : await o.createResampler(rate, PIPELINE_RATE);
        if (this.closed !== null) {
          next?.close();
          return;
        }
        current?.close();
        this.inputResampler = next;
        if (next !== null) this.parts.opened.push(() => next.close());
      }
      this.inputReady = true;
      for (const pcm of this.held.splice(0)) this.pushAudio(pcm);
    }
    const sink = o.sink;
    if (sink?.changeRate === undefined || (sink.sampleRate === rate && (output === null || output.toRate === rate))) return;
    // Both converters are made before anything changes: the switch itself is synchronous, between two ticks.
    const [nextOut, queued] = await Promise.all([
      output === null || output.toRate === rate ? null : o.createResampler(output.fromRate, rate),
      sink.sampleRate === rate ? null : o.createResampler(sink.sampleRate, rate),
    ]);
    if (this.closed !== null) {
      nextOut?.close();
      queued?.close();
      return;
    }
    if (nextOut !== null && output !== null) {
      const tail = output.swap(nextOut);
      if (tail.length > 0) sink.push(Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength));
    }
    if (queued !== null) sink.changeRate(queued);
  }

  /** Cancels every provider request and closes everything, in order. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      // The caller's last words reach the STT before its stream is told the call ended.
      this.parts.flushInput();
      this.parts.abort.abort(new Error('the pipeline is closing'));
      await this.rateSwitch;
      await this.parts.pipeline.close();
      for (const close of this.parts.opened.reverse()) {
        try {
          await close();
        } catch {
          // Closing is best effort; each close is idempotent and logs its own trouble.
        }
      }
    })();
    return this.closed;
  }
}

/**
 * How far a detector has got, when it says (SileroVad's counters; without them turns count silence in wall
 * time): the samples of its stream it has decided on, every window analysed or dropped.
 */
function progressOf(d: VoiceActivityDetector): { analysed(): number } | undefined {
  const c = d as Partial<Record<'analysedWindows' | 'droppedWindows', unknown>>;
  if (typeof c.analysedWindows !== 'number') return undefined;
  const n = (v: unknown): number => (typeof v === 'number' ? v : 0);
  return { analysed: () => (n(c.analysedWindows) + n(c.droppedWindows)) * 512 };
}
