// User turns (SPEC §3.2, §3.6, §3.7): transcripts between the VAD's start and stop become one user message; the
// LLM runs when the turn has ended and its final text is in. Also DTMF collection, injected messages and the
// barge-in decision (user speech while the bot speaks or thinks interrupts it).

import type { BotState } from './bot-state.js';
import type { ConversationContext } from './context.js';
import type { Direction, Frame } from './frames.js';
import type { PipelineObserver } from './observer.js';
import { FrameProcessor } from './processor.js';

export interface UserTurnOptions {
  /** How long after the VAD stop a missing final transcript is waited for (SPEC: 1.5 s). */
  finalTimeoutMs?: number;
  /** DTMF digits end with `#` or this much time without a digit (SPEC: 2 s). */
  dtmfTimeoutMs?: number;
  /** Whether bot replies are spoken (the call has a TTS). */
  audio: boolean;
  /** The VAD's stop_secs: the speech ended this long before its stop event (for the stt_final figure). */
  stopSecs?: number;
}

export class UserTurnAggregator extends FrameProcessor {
  private readonly finalTimeoutMs: number;
  private readonly dtmfTimeoutMs: number;
  private speaking = false;
  /** The VAD said stop; the turn ends when its final text is in. */
  private awaitingFinal = false;
  private finals: string[] = [];
  private interim = '';
  private finalTimer: NodeJS.Timeout | null = null;
  private digits = '';
  private dtmfTimer: NodeJS.Timeout | null = null;
  private stoppedAt = 0;
  private lastFinalAt = 0;

  constructor(
    private readonly context: ConversationContext,
    private readonly bot: BotState,
    private readonly observer: PipelineObserver,
    private readonly options: UserTurnOptions,
  ) {
    super();
    this.finalTimeoutMs = options.finalTimeoutMs ?? 1500;
    this.dtmfTimeoutMs = options.dtmfTimeoutMs ?? 2000;
  }

  process(frame: Frame, direction: Direction): void {
    if (direction === 'up') {
      this.push(frame, 'up');
      return;
    }
    switch (frame.type) {
      case 'user_started_speaking':
        this.onSpeechStart();
        this.push(frame);
        return;
      case 'user_stopped_speaking':
        this.onSpeechStop();
        this.push(frame);
        return;
      case 'transcription':
        this.onTranscription(frame.text, frame.final);
        return;
      case 'dtmf':
        this.onDtmf(frame.digit);
        return;
      case 'user_text':
        this.onUserText(frame.text, frame.runImmediately, frame.audioResponse);
        return;
      default:
        this.push(frame);
    }
  }

  private interruptIfBotActive(): void {
    if (this.bot.active) this.push({ type: 'interruption' });
  }

  private onSpeechStart(): void {
    this.observer.activity();
    this.observer.userStartedSpeaking();
    this.interruptIfBotActive();
    this.speaking = true;
    // Speech resumed before the previous turn's final arrived: it is the same turn.
    this.clearFinalTimer();
    this.awaitingFinal = false;
  }

  private onSpeechStop(): void {
    this.observer.activity();
    this.observer.userStoppedSpeaking();
    this.speaking = false;
    this.stoppedAt = performance.now();
    this.bot.userStoppedAt = this.stoppedAt;
    if (this.finals.length > 0 && this.interim === '') {
      this.observeSttFinal(this.lastFinalAt);
      this.endTurn();
      return;
    }
    this.awaitingFinal = true;
    this.finalTimer = setTimeout(() => {
      this.finalTimer = null;
      // No final within the timeout: the latest interim stands in; with no text at all the turn is dropped.
      if (this.interim !== '') this.finals.push(this.interim);
      this.interim = '';
      this.endTurn();
    }, this.finalTimeoutMs);
  }

  private onTranscription(text: string, final: boolean): void {
    this.observer.activity();
    this.observer.userTranscription(text, final);
    if (!final) {
      this.interim = text;
      return;
    }
    this.interim = '';
    this.finals.push(text);
    this.lastFinalAt = performance.now();
    if (this.awaitingFinal) {
      this.observeSttFinal(this.lastFinalAt);
      this.endTurn();
    } else if (!this.speaking && !this.awaitingFinal) {
      // A final with no VAD turn around it (speech the VAD missed, or a late final): a turn of its own.
      this.bot.userStoppedAt = performance.now();
      this.interruptIfBotActive();
      this.endTurn();
    }
  }

  /** stt_final: from the end of the speech (the VAD stop minus stop_secs) to the final transcript. */
  private observeSttFinal(finalAt: number): void {
    const speechEnd = this.stoppedAt - (this.options.stopSecs ?? 0) * 1000;
    this.observer.latency('stt_final', Math.max(0, finalAt - speechEnd) / 1000);
  }

  private endTurn(): void {
    this.clearFinalTimer();
    this.awaitingFinal = false;
    const text = this.finals.join(' ').replace(/\s+/g, ' ').trim();
    this.finals = [];
    this.interim = '';
    if (text === '') return;
    this.runLlmWith(text, this.options.audio);
  }

  private runLlmWith(text: string, audio: boolean): void {
    this.interruptIfBotActive();
    this.context.addUser(text);
    this.observer.userLlm(text);
    this.push({ type: 'llm_run', audio });
  }

  private onDtmf(digit: string): void {
    this.observer.activity();
    if (this.dtmfTimer !== null) clearTimeout(this.dtmfTimer);
    this.dtmfTimer = null;
    if (digit !== '#') this.digits += digit;
    if (digit === '#' || this.digits.length >= 32) {
      this.flushDigits();
      return;
    }
    this.dtmfTimer = setTimeout(() => {
      this.dtmfTimer = null;
      this.flushDigits();
    }, this.dtmfTimeoutMs);
  }

  private flushDigits(): void {
    const digits = this.digits;
    this.digits = '';
    if (digits === '') return;
    this.bot.userStoppedAt = performance.now();
    this.runLlmWith(`DTMF: ${digits}`, this.options.audio);
  }

  private onUserText(text: string, runImmediately: boolean, audioResponse: boolean): void {
    this.observer.activity();
    if (runImmediately) {
      this.runLlmWith(text, audioResponse && this.options.audio);
      return;
    }
    // Waits for the next turn: it is in the context when the LLM runs next.
    this.context.addUser(text);
    this.observer.userLlm(text);
  }

  private clearFinalTimer(): void {
    if (this.finalTimer !== null) clearTimeout(this.finalTimer);
    this.finalTimer = null;
  }

  override close(): void {
    this.clearFinalTimer();
    if (this.dtmfTimer !== null) clearTimeout(this.dtmfTimer);
    this.dtmfTimer = null;
  }
}
