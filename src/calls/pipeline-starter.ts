// Starts a call's voice pipeline with the providers its row asks for: at once for text-only sessions, at the
// first caller audio for calls with media (that is when the wire rate is known). A pipeline that cannot start
// ends the call with the reason of the stage that failed.

import { Resampler } from '../audio/resampler.js';
import type { Config } from '../config.js';
import { ProviderError, messageOf } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { BotAudioSink } from '../pipeline/audio-sink.js';
import { ConversationContext } from '../pipeline/context.js';
import { SileroVad } from '../providers/vad/silero.js';
import { VoicePipeline } from '../pipeline/voice-pipeline.js';
import type { ProviderRegistry } from '../providers/provider-registry.js';
import type { Call, TerminateReason } from './call.js';
import { CallObserver } from './call-observer.js';
import type { Siblings } from './siblings.js';
import { AiManagerTools, LocalCallTools } from './tools.js';

export interface PipelineStarterDeps {
  config: Config;
  providers: ProviderRegistry;
  siblings: Siblings;
  metrics: Metrics;
  publishMessage(type: string, call: Call, text: string): void;
  terminate(id: string, reason: TerminateReason): void;
}

export class PipelineStarter {
  constructor(private readonly deps: PipelineStarterDeps) {}

  /** Starts the pipeline once; later calls are ignored. `sink`/`wireRate` are null for text-only sessions. */
  start(call: Call, sink: BotAudioSink | null, wireRate: number | null): void {
    if (call.pipelineStarted || call.isTerminating) return;
    call.pipelineStarted = true;
    call.pipelineBuild = this.build(call, sink, wireRate);
  }

  private async build(call: Call, sink: BotAudioSink | null, wireRate: number | null): Promise<void> {
    const { config, providers } = this.deps;
    const row = call.row;
    let pipeline: VoicePipeline;
    try {
      const initial = row.llm_messages.length > 0 ? row.llm_messages : [{ role: 'system', content: config.defaults.systemPrompt }];
      const media = sink !== null && wireRate !== null;
      pipeline = await VoicePipeline.create({
        context: new ConversationContext(initial),
        llm: providers.llmClient(row.llm_type, call.aicall?.engineKey ?? ''),
        tools:
          call.aicall !== null
            ? new AiManagerTools(this.deps.siblings, call.aicall.aicallId, call.log)
            : row.reference_type === 'call' && media
              ? new LocalCallTools()
              : null,
        stt: media && row.stt_type !== '' ? { provider: providers.sttProvider(row.stt_type), language: row.stt_language } : null,
        tts:
          media && row.tts_type !== ''
            ? { provider: providers.ttsProvider(row.tts_type), voiceId: row.tts_voice_id || config.defaults.ttsVoiceId, language: row.tts_language }
            : null,
        vad: call.vadConfig,
        createVad: (params, events) =>
          SileroVad.create({
            params,
            onSpeechStart: () => events.onSpeechStart(),
            onSpeechStop: () => events.onSpeechStop(),
            onError: (err) => call.log.warn({ err: messageOf(err) }, 'VAD inference failed; barge-in and turns stop for this call'),
          }),
        createResampler: (from, to) => Resampler.create(from, to, config.resamplerQuality),
        sink,
        wireRate,
        observer: new CallObserver(call, (type, c, text) => this.deps.publishMessage(type, c, text), this.deps.metrics),
        signal: call.abort.signal,
        log: call.log,
        onEndCall: (reason) => {
          call.log.info({ reason }, 'the pipeline ends the call');
          this.deps.terminate(call.id, reason);
        },
      });
    } catch (err) {
      if (call.abort.signal.aborted) return;
      const reason: TerminateReason = err instanceof ProviderError ? `${err.stage}_error` : 'error';
      if (err instanceof ProviderError) this.deps.metrics.providerErrorsTotal.inc({ provider: err.provider, stage: err.stage });
      call.log.error({ err: messageOf(err), reason }, 'the pipeline could not start');
      this.deps.terminate(call.id, reason);
      return;
    }
    if (call.isTerminating || call.abort.signal.aborted) {
      await pipeline.close();
      return;
    }
    call.pipeline = pipeline;
    call.log.info({ stt: row.stt_type || null, tts: row.tts_type || null, llm: row.llm_type, wire_rate: wireRate }, 'pipeline started');
    pipeline.start();
    for (const m of call.pendingMessages.splice(0)) pipeline.injectMessage(m.text, m.runImmediately, m.audioResponse);
  }

  /** First step of termination: cancel and close the pipeline. */
  async stop(call: Call): Promise<void> {
    // A pipeline still opening its providers sees the aborted signal and closes itself; wait for that.
    await call.pipelineBuild;
    const p = call.pipeline;
    call.pipeline = null;
    await p?.close();
  }
}
