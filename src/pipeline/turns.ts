// User turns (SPEC §3.2, §3.6, §3.7; issue 13): transcripts between the VAD's start and stop become one user
// message; the LLM runs when the turn has ended and its final text is in. How much silence ends a turn depends on
// the words so far (end-of-turn.ts); a preemptive generation may start on the words at the VAD's early stop and
// is kept only if the turn ends with the same words. Also DTMF collection, injected messages and barge-in (user
// speech while the bot speaks or thinks pauses it, then cancels or resumes it: barge-in.ts).

import { BargeIn } from './barge-in.js';
import type { BotState } from './bot-state.js';
import type { ConversationContext } from './context.js';
import { DtmfCollector } from './dtmf-collector.js';
import { SAMPLES_PER_MS, VAD_WINDOW, completeness, hasWords, normalizeWords, silenceToEnd, silenceWaitMs } from './end-of-turn.js';
import { stopBounds, type StopBounds, type TurnSettings } from './end-of-turn.js';
import type { Direction, Frame } from './frames.js';
import type { PipelineObserver } from './observer.js';
import { FrameProcessor } from './processor.js';
import type { SpeculationGate } from './speculation-gate.js';
import type { TurnEnding, TurnTracker } from './turn-record.js';

export interface UserTurnOptions {
  /** How long after the VAD stop a missing final transcript is waited for (SPEC: 1.5 s). */
  finalTimeoutMs?: number;
  /** DTMF digits end with `#` or this much time without a digit (SPEC: 2 s). */
  dtmfTimeoutMs?: number;
  /** Whether bot replies are spoken (the call has a TTS). */
  audio: boolean;
  /** The call's stop_secs: the ordinary silence that ends a turn. */
  stopSecs?: number;
  /** The VAD's own stop window (its stop event comes this long after the speech ended). Default: stopSecs. */
  vadStopSecs?: number;
  /** Reversible barge-in, adaptive endpointing, preemptive generation. Absent: the classic behaviour. */
  turns?: TurnSettings;
  /** The call's per-turn record. */
  tracker?: TurnTracker;
  /** Holds the bot events of a preemptive generation until its turn commits (required for preemptive runs). */
  gate?: SpeculationGate;
  /** Samples of its 16 kHz stream the VAD has decided on: silence is then counted in audio it has heard. */
  vadProgress?: { analysed(): number };
}

/** An onset the VAD never resolves (its inference failed) stops holding a turn's end after this long. */
const ONSET_HOLD_MAX_MS = 1000;
export class UserTurnAggregator extends FrameProcessor {
  private readonly finalTimeoutMs: number;
  private readonly bounds: StopBounds;
  private readonly vadStopMs: number;
  private readonly bargeIn: BargeIn;
  private readonly tracker: TurnTracker | null;
  /** The VAD confirmed speech and has not stopped. */
  private speaking = false;
  /** The VAD reported a pause inside the current speech (fixed endpointing with preemptive replies). */
  private paused = false;
  /** The VAD stopped: the turn ends after enough silence, once its final text is in. */
  private awaitingEnd = false;
  /** performance.now() of an onset the VAD has neither confirmed nor dropped yet; null when none. */
  private onsetAt: number | null = null;
  private speechEndAt = 0;
  private finals: string[] = [];
  private interim = '';
  private finalTimer: NodeJS.Timeout | null = null;
  private endTimer: NodeJS.Timeout | null = null;
  private readonly dtmf: DtmfCollector;
  private lastFinalAt = 0;
  private finalTimedOut = false;
  /** The preemptive generation in flight for this turn: the words it answers. */
  private speculation: string | null = null;
  /** Where in the VAD's stream the speech ended (the stop position minus the stop window); null: unknown. */
  private speechEndSample: number | null = null;

  constructor(
    private readonly context: ConversationContext,
    private readonly bot: BotState,
    private readonly observer: PipelineObserver,
    private readonly options: UserTurnOptions,
  ) {
    super();
    this.finalTimeoutMs = options.finalTimeoutMs ?? 1500;
    this.dtmf = new DtmfCollector(options.dtmfTimeoutMs ?? 2000, (digits) => this.onDigits(digits));
    const stopSecs = options.stopSecs ?? 0;
    this.bounds = stopBounds(stopSecs, options.turns ?? { minStopSecs: Number.NaN, maxStopSecs: Number.NaN });
    this.vadStopMs = (options.vadStopSecs ?? stopSecs) * 1000;
    this.tracker = options.tracker ?? null;
    const windowMs = (options.turns?.falseInterruptionSecs ?? 0) * 1000;
    this.bargeIn = new BargeIn(windowMs, (f) => this.push(f), observer, this.tracker);
  }

  process(frame: Frame, direction: Direction): void {
    if (direction === 'up') {
      this.push(frame, 'up');
      return;
    }
    switch (frame.type) {
      case 'user_onset':
        this.onOnset();
        return;
      case 'user_onset_dropped':
        this.onOnsetDropped();
        return;
      case 'user_started_speaking':
        this.onSpeechStart();
        this.push(frame);
        return;
      case 'user_stopped_speaking':
        this.onSpeechStop(frame.atSample);
        this.push(frame);
        return;
      case 'user_paused':
        // The reply to the words so far can be prepared now and held until the VAD's stop ends the turn.
        this.paused = true;
        this.maybeSpeculate(true);
        return;
      case 'user_resumed':
        this.paused = false;
        this.discardSpeculation();
        return;
      case 'transcription':
        this.onTranscription(frame.text, frame.final);
        return;
      case 'turn_hint':
        if (frame.hint === 'eager_end') this.maybeSpeculate(true);
        else this.discardSpeculation();
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

  /** Per-turn steps (the pipeline's getter reads them). */
  private mark(step: Parameters<TurnTracker['mark']>[0], overwrite = false): void {
    this.tracker?.mark(step, overwrite);
  }

  private interruptIfBotActive(): void {
    if (this.bot.active) this.push({ type: 'interruption' });
  }

  private get inTurn(): boolean {
    return this.speaking || this.awaitingEnd;
  }

  /** The VAD's first speech window: pause a bot that is talking or thinking; hold a turn that is ending. */
  private onOnset(): void {
    this.observer.activity();
    this.onsetAt = performance.now();
    this.mark('onsetAt');
    if (this.bot.active) this.bargeIn.begin();
    // A turn that is ending holds (checkEnd waits for the VAD to confirm or drop this speech, bounded).
    if (this.awaitingEnd) this.checkEnd();
  }

  private onOnsetDropped(): void {
    this.onsetAt = null;
    // Speech too short for a turn: the bot was interrupted by a noise, not by the caller.
    if (!this.speaking) this.bargeIn.onsetDropped();
    if (this.awaitingEnd) this.checkEnd();
    else if (!this.inTurn && this.finals.length === 0 && this.interim === '') this.tracker?.dropOpen();
  }

  private onSpeechStart(): void {
    this.observer.activity();
    this.onsetAt = null;
    if (!this.inTurn) this.observer.userStartedSpeaking();
    this.mark('onsetAt');
    this.mark('vadStartAt');
    if (!this.bargeIn.reversible) this.interruptIfBotActive();
    else if (this.bot.active) this.bargeIn.begin();
    this.speaking = true;
    this.paused = false;
    // Speech resumed before the previous turn ended: it is the same turn, and a reply started for it is void.
    this.clearFinalTimer();
    this.clearEndTimer();
    this.awaitingEnd = false;
    this.discardSpeculation();
  }

  private onSpeechStop(atSample: number | undefined): void {
    this.observer.activity();
    this.speaking = false;
    this.paused = false;
    this.awaitingEnd = true;
    this.finalTimedOut = false;
    // The VAD counts its stop window in whole 512-sample windows.
    const stopWindowSamples = Math.round((this.vadStopMs * SAMPLES_PER_MS) / VAD_WINDOW) * VAD_WINDOW;
    this.speechEndSample = atSample === undefined ? null : atSample - stopWindowSamples;
    this.speechEndAt = performance.now() - this.vadStopMs;
    this.mark('vadStopAt', true);
    this.tracker?.mark('speechEndAt', true, performance.timeOrigin + this.speechEndAt);
    this.clearFinalTimer();
    this.finalTimer = setTimeout(() => {
      this.finalTimer = null;
      // No final in time: the latest interim stands in; with no text at all the turn is dropped.
      if (this.interim !== '') this.finals.push(this.interim);
      this.interim = '';
      this.finalTimedOut = true;
      this.checkEnd();
    }, this.finalTimeoutMs);
    this.maybeSpeculate();
    this.checkEnd();
  }

  private onTranscription(text: string, final: boolean): void {
    this.observer.activity();
    this.observer.userTranscription(text, final);
    if (text.trim() !== '') this.mark('firstInterimAt');
    if (hasWords(text)) this.bargeIn.confirm();
    if (!final) {
      this.interim = text;
    } else {
      this.interim = '';
      this.finals.push(text);
      this.lastFinalAt = performance.now();
      this.mark('finalAt', true);
    }
    if (this.awaitingEnd) {
      // Other words than the preemptive reply answers: it is void; maybe a new one on these words.
      if (this.speculation !== null && this.speculation !== normalizeWords(this.turnText())) {
        this.discardSpeculation();
      }
      this.maybeSpeculate();
      this.checkEnd();
    } else if (this.paused && this.speaking) {
      // Words during a pause the VAD reported: prepare the reply on them (other words void an earlier one).
      if (this.speculation !== null && this.speculation !== normalizeWords(this.turnText())) this.discardSpeculation();
      this.maybeSpeculate(true);
    } else if (final && !this.speaking) {
      // A late "uh-huh" (or an empty final) while the bot talks on after a false interruption: not a turn.
      if (this.bot.active && this.bargeIn.reversible && !hasWords(this.turnText())) {
        this.finals = [];
        return;
      }
      // A final with no VAD turn around it (speech the VAD missed, or a late final): a turn of its own.
      this.speechEndAt = performance.now();
      this.interruptIfBotActive();
      this.endTurn('transcript_only');
    }
  }

  private turnText(): string {
    return [...this.finals, this.interim].join(' ').replace(/\s+/g, ' ').trim();
  }

  /** Ends the turn if it has been silent long enough for its words and its final text is in. */
  private checkEnd(): void {
    this.clearEndTimer();
    if (!this.awaitingEnd || this.speaking) return;
    const now = performance.now();
    if (this.onsetAt !== null && now - this.onsetAt < ONSET_HOLD_MAX_MS) {
      // Maybe the caller goes on: wait for the VAD to confirm or drop that speech.
      this.endTimer = setTimeout(() => this.checkEnd(), this.onsetAt + ONSET_HOLD_MAX_MS - now);
      return;
    }
    const text = this.turnText();
    const wait = this.silenceWaitMs(now, silenceToEnd(text, this.bounds) * 1000);
    if (wait > 0) {
      this.endTimer = setTimeout(() => {
        this.endTimer = null;
        this.checkEnd();
      }, wait);
      return;
    }
    const finalIn = this.interim === '' && (this.finals.length > 0 || this.finalTimedOut);
    if (!finalIn) return;
    if (this.finals.length > 0 && !this.finalTimedOut) this.observeSttFinal(this.lastFinalAt);
    this.endTurn(this.finalTimedOut ? 'final_timeout' : completeness(text));
  }

  private silenceWaitMs(now: number, silenceMs: number): number {
    return silenceWaitMs({
      now,
      wallDue: this.speechEndAt + silenceMs,
      neededSample: this.speechEndSample === null ? null : this.speechEndSample + silenceMs * SAMPLES_PER_MS,
      analysed: this.options.vadProgress?.analysed() ?? null,
      // Only where this aggregator extends the VAD's own silence (adaptive endpointing): with fixed endpointing
      // the VAD's stop decides exactly as in the classic behaviour.
      guard: this.options.turns?.preemptive === true && silenceMs > this.vadStopMs,
    });
  }

  /** stt_final: from the end of the speech to the final transcript. */
  private observeSttFinal(finalAt: number): void {
    this.observer.latency('stt_final', Math.max(0, finalAt - this.speechEndAt) / 1000);
  }

  /**
   * Starts (or keeps) a preemptive generation on the words so far, when the call allows it: at a pause the VAD
   * reported, or (`sttSaysEnd`) when the STT predicts the end of the turn before the VAD has stopped.
   */
  private maybeSpeculate(sttSaysEnd = false): void {
    const gate = this.options.gate;
    if (this.options.turns?.preemptive !== true || gate === undefined || !this.options.audio) return;
    if (!(this.awaitingEnd || (sttSaysEnd && this.speaking)) || this.bot.active || this.bargeIn.pending) return;
    const text = this.turnText();
    if (!hasWords(text)) return;
    const words = normalizeWords(text);
    if (this.speculation === words) return;
    this.discardSpeculation();
    this.speculation = words;
    gate.hold();
    this.tracker?.preemptiveStarted();
    this.push({ type: 'llm_run', audio: true, speculative: text });
  }

  /** The turn went on (or ended with other words): the preemptive generation is thrown away unheard. */
  private discardSpeculation(): void {
    if (this.speculation === null) return;
    this.speculation = null;
    this.options.gate?.discard();
    this.tracker?.discardReply();
    this.push({ type: 'interruption', speculative: true });
  }

  private endTurn(ending: TurnEnding): void {
    this.clearFinalTimer();
    this.clearEndTimer();
    this.awaitingEnd = false;
    this.finalTimedOut = false;
    const text = this.finals.join(' ').replace(/\s+/g, ' ').trim();
    this.finals = [];
    this.interim = '';
    if (ending !== 'transcript_only') this.observer.userStoppedSpeaking();
    // Nothing said, or only "uh-huh" while the bot talks on after a false interruption: no turn.
    if (text === '' || (this.bot.active && this.bargeIn.reversible && !hasWords(text))) {
      this.discardSpeculation();
      this.tracker?.dropOpen();
      return;
    }
    // voice_to_voice keeps its meaning (SPEC §12): from the moment the turn's silence was long enough — with the
    // classic settings exactly the VAD's stop_secs stop — to the first reply frame. The caller's whole wait
    // (speech end → first frame) is the per-turn record's voice_to_voice stage.
    this.bot.userStoppedAt = Math.min(performance.now(), this.speechEndAt + silenceToEnd(text, this.bounds) * 1000);
    if (this.speculation !== null && this.speculation === normalizeWords(text)) {
      // The preemptive reply answers exactly these words: it may play now.
      this.speculation = null;
      this.context.addUser(text);
      this.observer.userLlm(text);
      this.tracker?.endTurn(text, ending, true);
      this.options.gate?.release();
      this.push({ type: 'turn_commit' });
      return;
    }
    this.discardSpeculation();
    this.runLlmWith(text, this.options.audio, ending);
  }

  private runLlmWith(text: string, audio: boolean, ending: TurnEnding | null): void {
    this.discardSpeculation();
    this.interruptIfBotActive();
    this.context.addUser(text);
    this.observer.userLlm(text);
    if (ending !== null) this.tracker?.endTurn(text, ending, false);
    this.push({ type: 'llm_run', audio });
  }

  private onDtmf(digit: string): void {
    this.observer.activity();
    this.dtmf.add(digit);
  }

  private onDigits(digits: string): void {
    this.bot.userStoppedAt = performance.now();
    this.runLlmWith(`DTMF: ${digits}`, this.options.audio, this.inTurn ? null : 'dtmf');
  }

  private onUserText(text: string, runImmediately: boolean, audioResponse: boolean): void {
    this.observer.activity();
    if (runImmediately) {
      this.runLlmWith(text, audioResponse && this.options.audio, null);
      return;
    }
    // Waits for the next turn: it is in the context when the LLM runs next (a preemptive reply did not see it).
    this.discardSpeculation();
    this.context.addUser(text);
    this.observer.userLlm(text);
  }

  private clearFinalTimer(): void {
    if (this.finalTimer !== null) clearTimeout(this.finalTimer);
    this.finalTimer = null;
  }

  private clearEndTimer(): void {
    if (this.endTimer !== null) clearTimeout(this.endTimer);
    this.endTimer = null;
  }

  override close(): void {
    this.clearFinalTimer();
    this.clearEndTimer();
    this.bargeIn.close();
    this.dtmf.close();
  }
}
