// The input side of a call's pipeline: voice activity detection and speech-to-text on the 16 kHz caller audio.

import type { SttStream } from '../providers/types.js';
import type { Direction, Frame } from './frames.js';
import { FrameProcessor } from './processor.js';

/** What the VAD processor needs from a detector: audio in; it calls back speechStarted/speechStopped. */
export interface VoiceActivityDetector {
  write(pcm: Int16Array): void;
  close(): void;
}

/** Runs the VAD on caller audio and turns its decisions into user_started/stopped_speaking frames. */
export class VadProcessor extends FrameProcessor {
  private detector: VoiceActivityDetector | null = null;

  attach(detector: VoiceActivityDetector): void {
    this.detector = detector;
  }

  speechStarted(): void {
    this.push({ type: 'user_started_speaking' });
  }

  speechStopped(): void {
    this.push({ type: 'user_stopped_speaking' });
  }

  process(frame: Frame, direction: Direction): void {
    if (direction === 'down' && frame.type === 'audio_in') this.detector?.write(frame.pcm);
    this.push(frame, direction);
  }

  override close(): void {
    this.detector?.close();
    this.detector = null;
  }
}

/** Streams caller audio to the STT for the whole call and turns its results into transcription frames. */
export class SttProcessor extends FrameProcessor {
  private stream: SttStream | null = null;

  attach(stream: SttStream): void {
    this.stream = stream;
  }

  transcript(text: string, final: boolean): void {
    this.push({ type: 'transcription', text, final });
  }

  failed(): void {
    this.push({ type: 'end_call', reason: 'stt_error' }, 'up');
  }

  process(frame: Frame, direction: Direction): void {
    if (direction === 'down' && frame.type === 'audio_in') {
      this.stream?.write(frame.pcm);
      return;
    }
    this.push(frame, direction);
  }

  override async close(): Promise<void> {
    const s = this.stream;
    this.stream = null;
    await s?.close();
  }
}
