// The end of the pipeline: bot audio is resampled to the wire rate and queued on the call's sink, and each
// generation is finalized into the context once — fully when its audio has been played, or with only what was
// actually spoken when the caller barged in (SPEC §3.4), or at once for text-only replies. A possible barge-in
// pauses the sink (the queue is kept, so a false one resumes exactly where it stopped); a speculative generation's
// audio is held here until its turn commits, and a thrown-away one leaves no trace in the context.

import type { Resampler } from '../audio/resampler.js';
import type { TtsWord } from '../providers/types.js';
import type { BotAudioSink, PlaybackListener } from './audio-sink.js';
import type { BotState } from './bot-state.js';
import type { ConversationContext } from './context.js';
import type { Direction, Frame } from './frames.js';
import type { PipelineObserver } from './observer.js';
import { FrameProcessor } from './processor.js';
import type { TurnTracker } from './turn-record.js';

const FRAME_SECONDS = 0.02;
/** Speculative audio held before its turn commits: two minutes at 16 kHz; a longer reply drops its tail. */
const MAX_HELD_BYTES = 16_000 * 2 * 120;

interface Generation {
  audio: boolean;
  /** The LLM text not yet moved into a tool-call message. */
  text: string;
  sentences: string[];
  words: TtsWord[];
  /** botFramesWritten at which this generation's first audio frame plays; null before its first audio. */
  startFrame: number | null;
  ttsDone: boolean;
  llmDone: boolean;
  endAfterReply: boolean;
  /** A preemptive generation whose turn has not committed: its audio waits in `held`, nothing is final. */
  speculative: boolean;
  held: Buffer[];
  heldBytes: number;
}

export class AssistantOutput extends FrameProcessor implements PlaybackListener {
  private gen: Generation | null = null;
  private closed = false;

  constructor(
    private readonly context: ConversationContext,
    private readonly bot: BotState,
    private readonly observer: PipelineObserver,
    private readonly sink: BotAudioSink | null,
    /** TTS rate → wire rate, one converter for the call; null when the rates match. */
    private readonly resampler: Pick<Resampler, 'process' | 'close'> | null,
    private readonly tracker: TurnTracker | null = null,
  ) {
    super();
    sink?.setPlaybackListener(this);
  }

  process(frame: Frame, direction: Direction): void {
    if (direction === 'up') {
      this.push(frame, 'up');
      return;
    }
    const gen = this.gen;
    switch (frame.type) {
      case 'llm_started':
        this.gen = {
          audio: frame.audio && this.sink !== null,
          text: '',
          sentences: [],
          words: [],
          startFrame: null,
          ttsDone: false,
          llmDone: false,
          endAfterReply: false,
          speculative: frame.speculative === true,
          held: [],
          heldBytes: 0,
        };
        return;
      case 'turn_commit':
        if (gen !== null && gen.speculative) this.commit(gen);
        return;
      case 'bot_pause':
        this.sink?.setPaused(true);
        return;
      case 'bot_resume':
        this.sink?.setPaused(false);
        return;
      case 'llm_text':
        if (gen !== null) gen.text += frame.text;
        return;
      case 'llm_tool_calls':
        // That text now lives in the assistant tool-call message the LLM processor added.
        if (gen !== null) gen.text = '';
        return;
      case 'tts_sentence':
        gen?.sentences.push(frame.text);
        return;
      case 'tts_audio':
        this.queueAudio(frame.pcm);
        return;
      case 'tts_words':
        if (gen !== null) gen.words.push(...frame.words);
        return;
      case 'tts_done':
        if (gen === null) return;
        gen.ttsDone = true;
        if (gen.speculative) return;
        this.sink?.flush();
        this.maybeFinish();
        return;
      case 'llm_stopped':
        if (gen === null) return;
        gen.llmDone = true;
        // A failed generation's text is not published or kept (only what was already spoken counts).
        if (frame.failed) gen.text = '';
        if (gen.speculative) return;
        if (!gen.audio) this.finalize(gen.text.trim());
        else this.maybeFinish();
        return;
      case 'end_after_reply':
        if (gen !== null) gen.endAfterReply = true;
        else this.push({ type: 'end_call', reason: 'stop' }, 'up');
        return;
      case 'interruption':
        if (frame.speculative === true) this.discard();
        else this.interrupt();
        return;
      default:
        return;
    }
  }

  private queueAudio(pcm: Buffer): void {
    const gen = this.gen;
    if (this.closed || gen === null || !gen.audio || this.sink === null) return;
    let out = pcm;
    if (this.resampler !== null) {
      const samples = this.resampler.process(toInt16(pcm));
      out = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
    }
    if (out.length === 0) return;
    if (gen.speculative) {
      if (gen.heldBytes + out.length > MAX_HELD_BYTES) return;
      // The resampler may hand back a view of its own buffer: keep a copy.
      gen.held.push(Buffer.from(out));
      gen.heldBytes += out.length;
      return;
    }
    gen.startFrame ??= this.sink.botFramesWritten + this.sink.queuedFrames;
    this.sink.push(out);
  }

  /** The turn the generation answered has ended as predicted: its held audio goes to the sink now. */
  private commit(gen: Generation): void {
    gen.speculative = false;
    this.bot.generating = true;
    const held = gen.held;
    gen.held = [];
    gen.heldBytes = 0;
    if (this.sink !== null && gen.audio && held.length > 0) {
      gen.startFrame ??= this.sink.botFramesWritten + this.sink.queuedFrames;
      for (const pcm of held) this.sink.push(pcm);
    }
    if (gen.ttsDone) this.sink?.flush();
    if (!gen.audio && gen.llmDone) this.finalize(gen.text.trim());
    else this.maybeFinish();
  }

  /** A speculative generation thrown away: nothing of it was heard or goes into the context. */
  private discard(): void {
    const gen = this.gen;
    if (gen === null || !gen.speculative) return;
    this.gen = null;
  }

  /** The generation is complete when the LLM and the TTS are done and its audio has left the queue. */
  private maybeFinish(): void {
    const gen = this.gen;
    if (gen === null || gen.speculative || !gen.llmDone || !gen.ttsDone) return;
    if (this.sink !== null && this.sink.queuedFrames > 0) return;
    this.finalize(gen.sentences.join(' ').trim() || gen.text.trim());
  }

  private interrupt(): void {
    this.sink?.clear();
    this.sink?.setPaused(false);
    const gen = this.gen;
    if (gen === null) return;
    this.tracker?.replyEnded();
    if (gen.speculative) {
      // Nothing of it was heard: thrown away, not an interruption of the bot.
      this.gen = null;
      return;
    }
    this.observer.interrupted('confirmed');
    this.finalize(gen.audio ? this.spokenText(gen) : gen.text.trim());
  }

  /** The words whose audio had started playing when the caller barged in. */
  private spokenText(gen: Generation): string {
    if (gen.startFrame === null || this.sink === null) return '';
    const played = (this.sink.botFramesWritten - gen.startFrame) * FRAME_SECONDS;
    if (played <= 0) return '';
    const spoken = gen.words.filter((w) => w.start < played).map((w) => w.text.trim());
    return spoken.join(' ').replace(/\s+/g, ' ').trim();
  }

  private finalize(text: string): void {
    const gen = this.gen;
    this.gen = null;
    this.bot.generating = false;
    this.context.addAssistant(text);
    if (text !== '') this.observer.botLlm(text);
    if (gen?.endAfterReply === true) {
      this.push({ type: 'end_call', reason: 'stop' }, 'up');
    }
  }

  playbackStarted(): void {
    this.tracker?.reply('firstBotFrameAt');
    this.bot.speaking = true;
    this.observer.activity();
    this.observer.botStartedSpeaking();
    const stoppedAt = this.bot.userStoppedAt;
    if (stoppedAt !== null) {
      this.bot.userStoppedAt = null;
      this.observer.latency('voice_to_voice', (performance.now() - stoppedAt) / 1000);
    }
  }

  playbackStopped(): void {
    this.bot.speaking = false;
    this.observer.activity();
    this.observer.botStoppedSpeaking();
    this.maybeFinish();
  }

  override close(): void {
    // The call ends mid-reply: the final bot text event still goes out (SPEC §3.8), with what was heard.
    const gen = this.gen;
    if (gen !== null && !this.closed) {
      this.gen = null;
      const text = gen.audio ? this.spokenText(gen) : gen.text.trim();
      if (text !== '') this.observer.botLlm(text);
    }
    this.closed = true;
    this.sink?.setPlaybackListener(null);
    this.resampler?.close();
  }
}

/** An Int16Array over PCM bytes, copying only when the bytes are not 2-aligned. */
export function toInt16(pcm: Buffer): Int16Array {
  if (pcm.byteOffset % 2 === 0) return new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length >> 1);
  const copy = new Int16Array(pcm.length >> 1);
  Buffer.from(copy.buffer).set(pcm.subarray(0, copy.length * 2));
  return copy;
}
