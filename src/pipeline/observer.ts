// What a pipeline reports to its owner: conversation events (SPEC §7), RTVI-style notices (SPEC §9), provider
// errors and latency figures. The call implements it; the pipeline never publishes anything itself.

import type { TurnRecord } from './turn-record.js';

export type Stage = 'stt' | 'llm' | 'tts';

export interface PipelineObserver {
  userStartedSpeaking(): void;
  userStoppedSpeaking(): void;
  /** Interim and final transcripts; finals become message_user_transcription. */
  userTranscription(text: string, final: boolean): void;
  /** The user text put into the context when the LLM runs (message_user_llm). */
  userLlm(text: string): void;
  botLlmStarted(): void;
  botLlmText(text: string): void;
  botLlmStopped(): void;
  /** The bot's text of one generation as it went into the context (message_bot_llm; partial if interrupted). */
  botLlm(text: string): void;
  /** Each sentence as it is sent to the TTS (message_bot_transcription). */
  botTranscription(sentence: string): void;
  botStartedSpeaking(): void;
  botStoppedSpeaking(): void;
  /**
   * A barge-in ended: `confirmed` — the bot was cancelled; `false` — no words came (noise, a cough, a
   * backchannel, echo) and the bot went on from where it paused. No argument: confirmed.
   */
  interrupted(kind?: 'confirmed' | 'false'): void;
  providerError(stage: Stage, provider: string, err: unknown): void;
  /** Latency figures in seconds. */
  latency(kind: 'stt_final' | 'llm_ttft' | 'tts_ttfb' | 'voice_to_voice', seconds: number): void;
  /** Any user or bot activity (resets the idle timer). */
  activity(): void;
  /** A user turn is complete: its reply started playing, or it ended without one (see turn-record.ts). */
  turnCompleted?(record: Readonly<TurnRecord>): void;
}

/** An observer that ignores everything: for tests and for calls nobody watches. */
export const NULL_OBSERVER: PipelineObserver = {
  userStartedSpeaking: () => undefined,
  userStoppedSpeaking: () => undefined,
  userTranscription: () => undefined,
  userLlm: () => undefined,
  botLlmStarted: () => undefined,
  botLlmText: () => undefined,
  botLlmStopped: () => undefined,
  botLlm: () => undefined,
  botTranscription: () => undefined,
  botStartedSpeaking: () => undefined,
  botStoppedSpeaking: () => undefined,
  interrupted: () => undefined,
  providerError: () => undefined,
  latency: () => undefined,
  activity: () => undefined,
};
