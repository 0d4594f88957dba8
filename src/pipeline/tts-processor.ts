// Speaks the sentences of each generation through the call's TTS session: one TTS turn per generation, audio
// pushed down as it arrives. A barge-in cancels the turn; two failed turns in a row end the call (SPEC §3.5).

import type { TtsSession, TtsTurn } from '../providers/types.js';
import type { Direction, Frame } from './frames.js';
import type { PipelineObserver } from './observer.js';
import { FrameProcessor } from './processor.js';
import type { TurnTracker } from './turn-record.js';

const MAX_FAILURES = 2;

export class TtsProcessor extends FrameProcessor {
  private current: { turn: TtsTurn; ctrl: AbortController } | null = null;
  private failures = 0;
  private closed = false;
  /** The generation being spoken is a speculative one (its steps go on the open turn's record). */
  private speculative = false;

  constructor(
    private readonly session: TtsSession,
    private readonly observer: PipelineObserver,
    private readonly callSignal: AbortSignal,
    private readonly tracker: TurnTracker | null = null,
  ) {
    super();
  }

  process(frame: Frame, direction: Direction): void {
    if (direction === 'up') {
      this.push(frame, 'up');
      return;
    }
    switch (frame.type) {
      case 'llm_started':
        this.speculative = frame.speculative === true;
        this.push(frame);
        return;
      case 'turn_commit':
        this.speculative = false;
        this.push(frame);
        return;
      case 'tts_sentence':
        if (this.closed) return;
        (this.current ?? this.startTurn()).turn.say(frame.text);
        this.push(frame);
        return;
      case 'tts_end':
        if (this.current !== null) this.current.turn.end();
        else this.push({ type: 'tts_done', failed: false });
        return;
      case 'interruption':
        this.cancel();
        this.push(frame);
        return;
      default:
        this.push(frame);
    }
  }

  private startTurn(): { turn: TtsTurn; ctrl: AbortController } {
    const ctrl = new AbortController();
    const turn = this.session.startTurn({ signal: AbortSignal.any([this.callSignal, ctrl.signal]) });
    const current = { turn, ctrl };
    this.current = current;
    this.tracker?.reply('ttsRequestAt', this.speculative);
    void this.consume(current);
    return current;
  }

  private async consume(current: { turn: TtsTurn; ctrl: AbortController }): Promise<void> {
    const { turn, ctrl } = current;
    const started = performance.now();
    let first = true;
    let failed = false;
    try {
      for await (const ev of turn.events()) {
        if (ctrl.signal.aborted || this.callSignal.aborted) return;
        if (ev.type === 'audio') {
          if (ev.pcm.length === 0) continue;
          if (first) {
            first = false;
            this.observer.latency('tts_ttfb', (performance.now() - started) / 1000);
            this.tracker?.reply('ttsFirstAudioAt', this.speculative);
          }
          this.push({ type: 'tts_audio', pcm: ev.pcm, sampleRate: this.session.sampleRate });
        } else {
          this.push({ type: 'tts_words', words: ev.words });
        }
      }
      this.failures = 0;
    } catch (err) {
      if (ctrl.signal.aborted || this.callSignal.aborted) return;
      failed = true;
      this.failures++;
      this.observer.providerError('tts', this.session.name, err);
    } finally {
      if (this.current === current) this.current = null;
    }
    if (ctrl.signal.aborted || this.callSignal.aborted) return;
    this.push({ type: 'tts_done', failed });
    if (this.failures >= MAX_FAILURES) this.push({ type: 'end_call', reason: 'tts_error' }, 'up');
  }

  private cancel(): void {
    this.current?.ctrl.abort();
    this.current = null;
  }

  override close(): void {
    this.closed = true;
    this.cancel();
  }
}
