// Builds a call's voice pipeline with the providers its row asks for. The CallManager starts it in one place: when
// the session starts (media attached — at the UUID, before any caller audio — or a text-only session). A
// pipeline that cannot start ends the call with the reason of the stage that failed.

import { Resampler } from '../audio/resampler.js';
import type { Config } from '../config.js';
import { ProviderError, messageOf } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { ConversationContext } from '../pipeline/context.js';
import { VoicePipeline } from '../pipeline/voice-pipeline.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { DspWorkerCrashedError, SileroVad } from '../providers/vad/silero.js';
import type { Call, TerminateReason } from './call.js';
import { CallObserver } from './call-observer.js';
import type { SiblingPort } from './ports.js';
import { AiManagerTools, LocalCallTools } from './tools.js';

export interface PipelineStarterDeps {
  config: Config;
  providers: ProviderRegistry;
  siblings: SiblingPort;
  metrics: Metrics;
  publishMessage(type: string, call: Call, text: string): void;
  terminate(id: string, reason: TerminateReason): void;
}

export class PipelineStarter {
  constructor(private readonly deps: PipelineStarterDeps) {}

  /** Builds the pipeline of `call`; null when it could not start (the call is then being ended). */
  readonly build = async (call: Call, signal: AbortSignal): Promise<VoicePipeline | null> => {
    const { config, providers } = this.deps;
    const row = call.row;
    try {
      const engineKey = await this.engineKey(call, signal);
      const initial = row.llm_messages.length > 0 ? row.llm_messages : [{ role: 'system', content: config.defaults.systemPrompt }];
      const media = call.media;
      const sink = media?.sink ?? null;
      return await VoicePipeline.create({
        context: new ConversationContext(initial),
        llm: providers.llmClient(row.llm_type, engineKey),
        tools:
          call.aicall !== null
            ? new AiManagerTools(this.deps.siblings, call.aicall.aicallId, call.log)
            : row.reference_type === 'call' && sink !== null
              ? new LocalCallTools()
              : null,
        stt: sink !== null && row.stt_type !== '' ? { provider: providers.sttProvider(row.stt_type), language: row.stt_language } : null,
        tts:
          sink !== null && row.tts_type !== ''
            ? { provider: providers.ttsProvider(row.tts_type), voiceId: row.tts_voice_id || config.defaults.ttsVoiceId, language: row.tts_language }
            : null,
        vad: call.vadConfig,
        sttChunkMs: config.sttChunkMs,
        turns: {
          falseInterruptionSecs: call.vadConfig.false_interruption_secs ?? config.turns.falseInterruptionSecs,
          minStopSecs: call.vadConfig.min_stop_secs ?? config.turns.minStopSecs,
          maxStopSecs: call.vadConfig.max_stop_secs ?? config.turns.maxStopSecs,
          preemptive: call.vadConfig.preemptive_generation ?? config.turns.preemptive,
        },
        createVad: (params, events, options) =>
          SileroVad.create({
            params,
            pauseSecs: options?.pauseSecs ?? 0,
            onSpeechPause: () => events.onSpeechPause?.(),
            onSpeechResume: () => events.onSpeechResume?.(),
            onSpeechStart: () => events.onSpeechStart(),
            onSpeechStop: (atSample) => events.onSpeechStop(atSample),
            onSpeechOnset: () => events.onSpeechOnset(),
            onOnsetDropped: () => events.onOnsetDropped(),
            onError: (err) => {
              call.log.warn({ err: messageOf(err) }, 'VAD inference failed; barge-in and turns stop for this call');
              // A crashed DSP worker took the call's VAD state with it: end the call rather than leave it deaf.
              if (err instanceof DspWorkerCrashedError) this.deps.terminate(call.id, 'error');
            },
          }),
        createResampler: (from, to) => Resampler.create(from, to, config.resamplerQuality),
        sink,
        inputRate: call.inputRate ?? media?.expectedInputRate ?? null,
        observer: new CallObserver(call, (type, c, text) => this.deps.publishMessage(type, c, text), this.deps.metrics),
        signal,
        log: call.log,
        onEndCall: (reason) => {
          call.log.info({ reason }, 'the pipeline ends the call');
          this.deps.terminate(call.id, reason);
        },
      });
    } catch (err) {
      if (signal.aborted) return null;
      const reason: TerminateReason = err instanceof ProviderError ? `${err.stage}_error` : 'error';
      // A provider that failed here was counted by its base (or the registry): nothing to count again.
      if (err instanceof ProviderError) {
        call.providerFailure = { stage: err.stage, provider: err.provider, message: messageOf(err), at: Date.now() };
      }
      call.log.error({ err: messageOf(err), reason }, 'the pipeline could not start');
      this.deps.terminate(call.id, reason);
      return null;
    }
  };

  /**
   * The AI's own LLM key, asked of ai-manager when the pipeline starts (not on the create path, as the old
   * service did); a failure falls back to the instance's key (SPEC §5.1).
   */
  private async engineKey(call: Call, signal: AbortSignal): Promise<string> {
    const aiId = call.aicall?.aiId ?? '';
    if (aiId === '' || /^0{8}-0{4}-0{4}-0{4}-0{12}$/.test(aiId)) return '';
    try {
      return await this.deps.siblings.getAiEngineKey(aiId, signal);
    } catch (err) {
      if (signal.aborted) throw err;
      call.log.warn({ err: messageOf(err), ai_id: aiId }, 'could not get the AI key from ai-manager; using the instance key');
      return '';
    }
  }
}
