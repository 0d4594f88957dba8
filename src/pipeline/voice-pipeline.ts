// One call's pipeline, assembled (SPEC §3.1): transport in → resample to 16 kHz → VAD → STT → user turns → LLM
// (+tools) → sentences → TTS → assistant output (resample to the wire rate, paced sink). Stages the call does not
// need are left out. Everything it opens is closed by close(); the call's AbortSignal cancels every request.

import { RESAMPLER_HOLD_BACK_MS, type Resampler } from '../audio/resampler.js';
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
  createVad(params: VadParams, events: { onSpeechStart(): void; onSpeechStop(): void }): Promise<VoiceActivityDetector>;
  createResampler(fromRate: number, toRate: number): Promise<Resampler>;
  /** The call's paced output; null for text-only sessions. */
  sink: BotAudioSink | null;
  /** The caller's audio rate; null when the call has no media. */
  wireRate: number | null;
  observer: PipelineObserver;
  /** The call's signal: aborting it cancels every provider request and stream. */
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

export class VoicePipeline {
  private closed: Promise<void> | null = null;

  private constructor(
    private readonly pipeline: Pipeline,
    private readonly inputResampler: Resampler | null,
    private readonly opened: Array<() => Promise<void> | void>,
    private readonly hasAudioOut: boolean,
    private readonly abortedSignal: AbortSignal,
  ) {}

  /** Opens the providers and builds the chain. On failure everything opened so far is closed again. */
  static async create(o: VoicePipelineOptions): Promise<VoicePipeline> {
    const opened: Array<() => Promise<void> | void> = [];
    try {
      const bot = new BotState();
      const processors: FrameProcessor[] = [];
      let inputResampler: Resampler | null = null;
      const hasMedia = o.sink !== null && o.wireRate !== null;

      if (o.stt !== null && hasMedia && o.wireRate !== null) {
        if (o.wireRate !== PIPELINE_RATE) {
          inputResampler = await o.createResampler(o.wireRate, PIPELINE_RATE);
          const r = inputResampler;
          opened.push(() => r.close());
        }
        const vadProc = new VadProcessor(vadLeadFor(inputResampler));
        const detector = await o.createVad(o.vad, {
          onSpeechStart: () => vadProc.speechStarted(),
          onSpeechStop: () => vadProc.speechStopped(),
        });
        vadProc.attach(detector);
        opened.push(() => vadProc.close());
        const sttProc = new SttProcessor();
        let fatal = false;
        const stream = await o.stt.provider.open({
          language: o.stt.language,
          signal: o.signal,
          log: o.log,
          onTranscript: (t) => sttProc.transcript(t.text, t.final),
          onFatal: (err) => {
            if (fatal || o.signal.aborted) return;
            fatal = true;
            o.observer.providerError('stt', o.stt?.provider.name ?? 'stt', err);
            sttProc.failed();
          },
          onError: (err) => o.observer.providerError('stt', o.stt?.provider.name ?? 'stt', err),
        });
        sttProc.attach(stream);
        opened.push(() => sttProc.close());
        processors.push(vadProc, sttProc);
      }

      const audioOut = o.tts !== null && hasMedia;
      processors.push(new UserTurnAggregator(o.context, bot, o.observer, { audio: audioOut, stopSecs: o.vad.stop_secs }));
      const llmProc = new LlmProcessor(o.llm, o.context, o.tools, bot, o.observer, o.signal);
      opened.push(() => llmProc.close());
      processors.push(llmProc, new SentenceProcessor(o.observer));

      let outputResampler: Resampler | null = null;
      if (audioOut && o.tts !== null && o.sink !== null) {
        const session: TtsSession = await o.tts.provider.open({
          voiceId: o.tts.voiceId,
          language: o.tts.language,
          signal: o.signal,
          log: o.log,
        });
        opened.push(() => session.close());
        const ttsProc = new TtsProcessor(session, o.observer, o.signal);
        opened.push(() => ttsProc.close());
        processors.push(ttsProc);
        if (session.sampleRate !== o.sink.sampleRate) {
          outputResampler = await o.createResampler(session.sampleRate, o.sink.sampleRate);
        }
      }
      const output = new AssistantOutput(o.context, bot, o.observer, audioOut ? o.sink : null, outputResampler);
      opened.push(() => output.close());
      processors.push(output);

      const exit = (frame: Frame, direction: Direction): void => {
        if (direction === 'up' && frame.type === 'end_call') o.onEndCall(frame.reason);
      };
      return new VoicePipeline(new Pipeline(processors, exit), inputResampler, opened, audioOut, o.signal);
    } catch (err) {
      for (const close of opened.reverse()) {
        try {
          await close();
        } catch {
          // Already failing: the first error is the one reported.
        }
      }
      throw err;
    }
  }

  /** The bot speaks first: one LLM run on the initial context. */
  start(): void {
    this.feed({ type: 'llm_run', audio: this.hasAudioOut });
  }

  /** Caller audio at the wire rate (s16le mono). */
  pushAudio(pcm: Buffer): void {
    if (this.closed !== null || pcm.length < 2 || this.abortedSignal.aborted) return;
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
    if (this.closed === null) this.pipeline.feed(frame);
  }

  /** Cancels and closes everything. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await this.pipeline.close();
      for (const close of this.opened.reverse()) {
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
