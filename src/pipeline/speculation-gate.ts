// A preemptive generation runs before the user's turn has ended and may be thrown away: until its turn commits,
// nothing of it may reach the caller's events (message_bot_transcription, bot-llm-text …). The gate stands between
// the bot-side processors and the call's observer: while held, bot events wait; released, they go out in order;
// discarded, they are dropped. User-side events, errors and latency figures always pass at once.

import type { PipelineObserver, Stage } from './observer.js';

/** Bot events a held gate keeps: at most a few replies' worth of text before the turn commits or is thrown away. */
const MAX_HELD = 10_000;

export class SpeculationGate implements PipelineObserver {
  private held: Array<() => void> | null = null;

  constructor(private readonly inner: PipelineObserver) {}

  get holding(): boolean {
    return this.held !== null;
  }

  /** Bot events wait from now on. */
  hold(): void {
    this.held ??= [];
  }

  /** The held events go out, and later ones pass at once. */
  release(): void {
    const held = this.held;
    this.held = null;
    if (held !== null) for (const emit of held) emit();
  }

  /** The held events are dropped, and later ones pass at once. */
  discard(): void {
    this.held = null;
  }

  private bot(emit: () => void): void {
    if (this.held === null) emit();
    else if (this.held.length < MAX_HELD) this.held.push(emit);
  }

  userStartedSpeaking(): void {
    this.inner.userStartedSpeaking();
  }
  userStoppedSpeaking(): void {
    this.inner.userStoppedSpeaking();
  }
  userTranscription(text: string, final: boolean): void {
    this.inner.userTranscription(text, final);
  }
  userLlm(text: string): void {
    this.inner.userLlm(text);
  }
  botLlmStarted(): void {
    this.bot(() => this.inner.botLlmStarted());
  }
  botLlmText(text: string): void {
    this.bot(() => this.inner.botLlmText(text));
  }
  botLlmStopped(): void {
    this.bot(() => this.inner.botLlmStopped());
  }
  botLlm(text: string): void {
    this.bot(() => this.inner.botLlm(text));
  }
  botTranscription(sentence: string): void {
    this.bot(() => this.inner.botTranscription(sentence));
  }
  botStartedSpeaking(): void {
    this.inner.botStartedSpeaking();
  }
  botStoppedSpeaking(): void {
    this.inner.botStoppedSpeaking();
  }
  interrupted(kind?: 'confirmed' | 'false'): void {
    this.inner.interrupted(kind);
  }
  providerError(stage: Stage, provider: string, err: unknown): void {
    this.inner.providerError(stage, provider, err);
  }
  latency(kind: 'stt_final' | 'llm_ttft' | 'tts_ttfb' | 'voice_to_voice', seconds: number): void {
    this.inner.latency(kind, seconds);
  }
  activity(): void {
    this.inner.activity();
  }
  turnCompleted(record: Parameters<NonNullable<PipelineObserver['turnCompleted']>>[0]): void {
    this.inner.turnCompleted?.(record);
  }
}
