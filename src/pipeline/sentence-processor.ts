// Turns the LLM's token stream into sentences for the TTS: each one is sent as soon as it is complete, the rest
// when the LLM finishes. Text-only generations pass through untouched.

import type { Direction, Frame } from './frames.js';
import type { PipelineObserver } from './observer.js';
import { FrameProcessor } from './processor.js';
import { SentenceSplitter } from './sentences.js';

export class SentenceProcessor extends FrameProcessor {
  private readonly splitter = new SentenceSplitter();
  private audio = false;

  constructor(private readonly observer: PipelineObserver) {
    super();
  }

  process(frame: Frame, direction: Direction): void {
    if (direction === 'up') {
      this.push(frame, 'up');
      return;
    }
    switch (frame.type) {
      case 'llm_started':
        this.audio = frame.audio;
        this.splitter.clear();
        this.push(frame);
        return;
      case 'llm_text':
        this.push(frame);
        if (this.audio) for (const s of this.splitter.push(frame.text)) this.sentence(s);
        return;
      case 'llm_stopped':
        if (this.audio) {
          // After a provider failure the unfinished sentence is dropped: it was never meant to be said that way.
          const rest = frame.failed ? '' : this.splitter.flush();
          this.splitter.clear();
          if (rest !== '') this.sentence(rest);
          this.push({ type: 'tts_end' });
        }
        this.audio = false;
        this.push(frame);
        return;
      case 'interruption':
        this.splitter.clear();
        this.audio = false;
        this.push(frame);
        return;
      default:
        this.push(frame);
    }
  }

  private sentence(text: string): void {
    this.observer.botTranscription(text);
    this.push({ type: 'tts_sentence', text });
  }
}
