// Reversible barge-in (issue 13): speech under the bot pauses its output at the first speech window, keeping the
// queued audio and the LLM and TTS streams. Transcript words within the window confirm it (the bot is cancelled
// as in SPEC §3.4, the context keeps what was heard); no words, or speech the VAD does not confirm, make it false
// and the bot goes on from the frame where it paused. Coughs, clicks, "uh-huh" and the bot's own echo are what
// this saves a call from.

import type { Frame } from './frames.js';
import type { PipelineObserver } from './observer.js';
import type { TurnTracker } from './turn-record.js';

/**
 * After the VAD drops an onset the bot resumes this much later, unless speech comes back: the VAD's onset and
 * drop can flicker on the dips inside a word before start_secs confirms it, and each flicker would let a few
 * bot frames through.
 */
const RESUME_HOLD_MS = 100;

export class BargeIn {
  private timer: NodeJS.Timeout | null = null;
  private resumeTimer: NodeJS.Timeout | null = null;
  private paused = false;

  constructor(
    /** How long after the onset transcript words may confirm it; 0 disables pausing (classic barge-in). */
    private readonly windowMs: number,
    private readonly push: (frame: Frame) => void,
    private readonly observer: PipelineObserver,
    private readonly tracker: TurnTracker | null,
  ) {}

  /** Reversible barge-in is on for this call. */
  get reversible(): boolean {
    return this.windowMs > 0;
  }

  /** The bot is paused, waiting for words. */
  get pending(): boolean {
    return this.paused;
  }

  /** Speech began under the bot: pause it and give the caller `windowMs` to say a word. */
  begin(): void {
    if (!this.reversible) return;
    if (this.paused) {
      // Speech came back before a dropped onset let the bot resume: stay paused.
      if (this.resumeTimer !== null) clearTimeout(this.resumeTimer);
      this.resumeTimer = null;
      return;
    }
    this.paused = true;
    this.tracker?.mark('bargeInAt');
    this.push({ type: 'bot_pause' });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.falseAlarm();
    }, this.windowMs);
  }

  /** Words arrived: the caller really took the turn; the bot is cancelled and keeps only what was heard. */
  confirm(): void {
    if (!this.paused) return;
    this.stop();
    this.tracker?.interruption('confirmed');
    // AssistantOutput counts it (as confirmed), empties the queue and lifts the pause.
    this.push({ type: 'interruption' });
  }

  /** The VAD dropped the onset (shorter than start_secs): resume soon, unless speech comes back first. */
  onsetDropped(): void {
    if (!this.paused || this.resumeTimer !== null) return;
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = null;
      this.falseAlarm();
    }, RESUME_HOLD_MS);
  }

  /** No turn after all: the bot goes on from where it paused. */
  falseAlarm(): void {
    if (!this.paused) return;
    this.stop();
    this.tracker?.interruption('false');
    this.observer.interrupted('false');
    this.push({ type: 'bot_resume' });
  }

  private stop(): void {
    this.paused = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.resumeTimer !== null) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
  }

  close(): void {
    this.stop();
  }
}
