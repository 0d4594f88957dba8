// A call's view of its pipeline: conversation events go out on RabbitMQ (SPEC §7), turn figures into the metrics
// (provider failures are counted by the provider bases, not here), any activity pushes the idle deadline back. Listeners (the WebSocket monitor) get the same notices.

import { messageOf } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { PipelineObserver, Stage } from '../pipeline/observer.js';
import { turnStages, type TurnRecord } from '../pipeline/turn-record.js';
import type { Call } from './call.js';

export type { CallListener } from './ports.js';

export class CallObserver implements PipelineObserver {
  /** A confirmed barge-in whose reply's spoken text (the next botLlm) is still to come. */
  private cutAt: number | null = null;

  constructor(
    private readonly call: Call,
    private readonly publish: (type: string, call: Call, text: string) => void,
    private readonly metrics: Metrics,
  ) {}

  private notice(type: string, data?: Record<string, unknown>): void {
    for (const l of this.call.listeners) l.notice(type, data);
  }

  userStartedSpeaking(): void {
    this.notice('user-started-speaking');
  }

  userStoppedSpeaking(): void {
    this.notice('user-stopped-speaking');
  }

  userTranscription(text: string, final: boolean): void {
    if (final && text !== '') this.publish('message_user_transcription', this.call, text);
    this.notice('user-transcription', { text, user_id: '', timestamp: new Date().toISOString(), final });
  }

  userLlm(text: string): void {
    this.publish('message_user_llm', this.call, text);
  }

  botLlmStarted(): void {
    this.flushCut(null);
    this.notice('bot-llm-started');
  }

  botLlmText(text: string): void {
    this.notice('bot-llm-text', { text });
  }

  botLlmStopped(): void {
    this.notice('bot-llm-stopped');
  }

  botLlm(text: string): void {
    if (this.cutAt !== null) {
      this.call.recordInterruption({ kind: 'confirmed', at: this.cutAt, heard: text });
      this.cutAt = null;
    }
    this.publish('message_bot_llm', this.call, text);
  }

  botTranscription(sentence: string): void {
    this.publish('message_bot_transcription', this.call, sentence);
    this.notice('bot-transcription', { text: sentence });
  }

  botStartedSpeaking(): void {
    this.notice('bot-started-speaking');
  }

  botStoppedSpeaking(): void {
    this.notice('bot-stopped-speaking');
  }

  interrupted(kind: 'confirmed' | 'false' = 'confirmed'): void {
    this.metrics.interruptionsTotal.inc({ kind });
    // A confirmed one is recorded with what was heard of the reply, which the next botLlm carries.
    if (kind === 'false') this.call.recordInterruption({ kind, at: Date.now(), heard: '' });
    else this.flushCut(Date.now());
    this.call.log.debug({ kind }, kind === 'false' ? 'false barge-in: bot resumed' : 'barge-in: bot interrupted');
  }

  turnCompleted(record: Readonly<TurnRecord>): void {
    for (const [stage, seconds] of turnStages(record)) this.metrics.turnStageSeconds.observe({ stage }, seconds);
    const discarded = record.preemptiveRuns - (record.preemptiveUsed ? 1 : 0);
    if (record.preemptiveUsed) this.metrics.preemptiveGenerationsTotal.inc({ outcome: 'used' });
    if (discarded > 0) this.metrics.preemptiveGenerationsTotal.inc({ outcome: 'discarded' }, discarded);
  }

  /** A confirmed barge-in still waiting for its heard text is recorded without it (nothing of the reply played). */
  private flushCut(next: number | null): void {
    if (this.cutAt !== null) this.call.recordInterruption({ kind: 'confirmed', at: this.cutAt, heard: '' });
    this.cutAt = next;
  }

  /** Logged, kept on the call and shown; provider_errors_total was counted by the provider's base. */
  providerError(stage: Stage, provider: string, err: unknown): void {
    const message = messageOf(err);
    this.call.providerFailure = { stage, provider, message, at: Date.now() };
    this.call.log.warn({ stage, provider, err: message }, 'provider error');
    this.notice('error', { message: `${stage} provider ${provider} failed` });
  }

  latency(kind: 'stt_final' | 'llm_ttft' | 'tts_ttfb' | 'voice_to_voice', seconds: number): void {
    const m = this.metrics;
    const h = kind === 'stt_final' ? m.sttFinal : kind === 'llm_ttft' ? m.llmTtft : kind === 'tts_ttfb' ? m.ttsTtfb : m.voiceToVoice;
    h.observe(seconds);
    this.call.latency[kind] = seconds;
  }

  activity(): void {
    this.call.touch();
  }
}
