// Pipecat's VAD turn state machine (SPEC §3.2), one window's speech decision at a time: quiet → starting (an
// onset) → speaking once start_secs of speech windows ran, → stopping on non-speech (a pause after pauseWindows)
// → quiet once stop_secs of non-speech ran; speech while stopping resumes.

export type VadState = 'quiet' | 'starting' | 'speaking' | 'stopping';

/** What the machine reports; `atSample` is the stream position just after the deciding window. */
export interface SpeechEvents {
  /** `atSample`: the call's 16 kHz stream position just after the window that completed `start_secs`. */
  onSpeechStart?: (atSample: number) => void;
  /** `atSample`: position just after the window that completed `stop_secs` of non-speech. */
  onSpeechStop?: (atSample: number) => void;
  /**
   * The first speech window after quiet: a turn may be starting (barge-in pauses the bot here, long before
   * `start_secs` confirms it). Followed by onSpeechStart, or by onOnsetDropped when the speech stops short.
   */
  onSpeechOnset?: (atSample: number) => void;
  /** The speech since onSpeechOnset ended before `start_secs`: no turn (a cough, a click, line noise). */
  onOnsetDropped?: (atSample: number) => void;
  /**
   * A pause in speech: `pauseSecs` of non-speech while speaking, before `stop_secs` ends it. Followed by
   * onSpeechStop, or by onSpeechResume when speech comes back first.
   */
  onSpeechPause?: (atSample: number) => void;
  /** Speech came back after onSpeechPause, before `stop_secs`: the same utterance goes on. */
  onSpeechResume?: (atSample: number) => void;
}

export class SpeechStateMachine {
  state: VadState = 'quiet';
  /** Windows in the current run (of speech while starting, of non-speech while stopping). */
  private run = 0;
  /** onSpeechPause fired for the current stretch of non-speech. */
  private paused = false;

  /** `pauseWindows` 0: no pause events. */
  constructor(
    private readonly startWindows: number,
    private readonly stopWindows: number,
    private readonly pauseWindows: number,
    private readonly events: SpeechEvents,
  ) {}

  /** One window's decision: moves the state, firing the events it crosses. */
  step(speech: boolean, atSample: number): void {
    switch (this.state) {
      case 'quiet':
        if (speech) {
          this.state = 'starting';
          this.run = 1;
          this.events.onSpeechOnset?.(atSample);
        }
        break;
      case 'starting':
        if (speech) this.run++;
        else {
          this.state = 'quiet';
          this.events.onOnsetDropped?.(atSample);
        }
        break;
      case 'speaking':
        if (!speech) {
          this.state = 'stopping';
          this.run = 1;
        }
        break;
      case 'stopping':
        if (speech) {
          this.state = 'speaking';
          if (this.paused) {
            this.paused = false;
            this.events.onSpeechResume?.(atSample);
          }
        } else this.run++;
        break;
    }
    if (this.state === 'starting' && this.run >= this.startWindows) {
      this.state = 'speaking';
      this.events.onSpeechStart?.(atSample);
    } else if (this.state === 'stopping' && this.run >= this.stopWindows) {
      this.state = 'quiet';
      this.paused = false;
      this.events.onSpeechStop?.(atSample);
    } else if (this.state === 'stopping' && !this.paused && this.pauseWindows > 0 && this.run >= this.pauseWindows) {
      this.paused = true;
      this.events.onSpeechPause?.(atSample);
    }
  }
}
