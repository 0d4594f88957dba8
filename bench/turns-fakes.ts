// Provider fakes and a wire for the turn-taking benchmark (bench/turns.ts). The delays are the realistic
// ones: STT final 300 ms after the speech ends (interims every 250 ms, 150 ms behind the audio), LLM first token
// 350 ms after the request, TTS first audio 150 ms after the first sentence. The STT is told what the caller says
// and when (the benchmark is the caller), as a streaming STT would hear it; it recognises nothing itself.

import type { ClockSink } from '../src/audio/clock.js';
import type { BotAudioSink, PlaybackListener } from '../src/pipeline/audio-sink.js';
import type { LlmChunk, LlmClient, LlmRequest, SttOptions, SttProvider, SttStream, TtsEvent, TtsProvider, TtsSession, TtsTurn, TtsTurnOptions } from '../src/providers/types.js';

export const STT_FINAL_MS = 300;
export const STT_INTERIM_EVERY_MS = 250;
export const STT_INTERIM_LAG_MS = 150;
export const LLM_FIRST_TOKEN_MS = 350;
export const TTS_FIRST_AUDIO_MS = 150;

export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** A streaming STT for one call that transcribes what the benchmark says it hears, with realistic timing. */
export class ScriptedStt implements SttProvider {
  readonly name = 'bench-stt';
  private listener: SttOptions | null = null;
  private timers = new Set<NodeJS.Timeout>();

  open(options: SttOptions): Promise<SttStream> {
    this.listener = options;
    options.signal.addEventListener('abort', () => this.close(), { once: true });
    return Promise.resolve({ write: () => undefined, close: () => Promise.resolve(this.close()) });
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  /** The caller starts saying `text`, lasting `durationMs`: interims while it goes on, the final after it ends. */
  speech(text: string, durationMs: number): void {
    const words = text.split(/\s+/).filter((w) => w !== '');
    const interim = (heardMs: number): string => {
      const n = Math.max(1, Math.min(words.length, Math.round((heardMs / durationMs) * words.length)));
      return words.slice(0, n).join(' ').replace(/[.?!,]$/, '').toLowerCase();
    };
    for (let at = STT_INTERIM_EVERY_MS; at < durationMs; at += STT_INTERIM_EVERY_MS) {
      this.later(at + STT_INTERIM_LAG_MS, () => this.listener?.onTranscript({ text: interim(at), final: false }));
    }
    this.later(durationMs + STT_INTERIM_LAG_MS, () => this.listener?.onTranscript({ text: interim(durationMs), final: false }));
    this.later(durationMs + STT_FINAL_MS, () => this.listener?.onTranscript({ text, final: true }));
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.listener = null;
  }
}

/** First token after 350 ms, then one sentence every 30 ms. The greeting (no user message yet) is `greeting`. */
export class DelayedLlm implements LlmClient {
  readonly name = 'bench-llm';
  requests = 0;

  constructor(
    private readonly greeting: readonly string[],
    // The first chunk carries the start of the next sentence, so the sentence splitter can cut the first one at
    // once: what the LLM takes to finish a sentence is the LLM's time, not the pipeline's.
    private readonly reply: readonly string[] = ['Sure, I can help with that. What', ' else do you need?'],
  ) {}

  async *stream(req: LlmRequest): AsyncIterable<LlmChunk> {
    this.requests++;
    const sentences = req.messages.some((m) => m.role === 'user') ? this.reply : this.greeting;
    await delay(LLM_FIRST_TOKEN_MS, req.signal);
    for (let i = 0; i < sentences.length; i++) {
      if (req.signal.aborted) return;
      if (i > 0) await delay(30, req.signal);
      if (req.signal.aborted) return;
      yield { type: 'text', text: sentences[i] as string };
    }
  }
}

const TTS_RATE = 16_000;
/** Speech-like pacing of the fake voice: 70 ms per character. */
const MS_PER_CHAR = 70;

/** 16 kHz audio (a quiet tone), first audio 150 ms after the turn's first sentence, then faster than real time. */
export class DelayedTts implements TtsProvider, TtsSession {
  readonly name = 'bench-tts';
  readonly sampleRate = TTS_RATE;

  open(): Promise<TtsSession> {
    return Promise.resolve(this);
  }

  startTurn(options: TtsTurnOptions): TtsTurn {
    const queue: string[] = [];
    let ended = false;
    let wake: (() => void) | null = null;
    const poke = (): void => {
      wake?.();
      wake = null;
    };
    options.signal.addEventListener('abort', poke, { once: true });
    return {
      say: (text) => {
        queue.push(text);
        poke();
      },
      end: () => {
        ended = true;
        poke();
      },
      events: async function* (): AsyncIterable<TtsEvent> {
        let first = true;
        let offset = 0;
        for (;;) {
          if (options.signal.aborted) return;
          const text = queue.shift();
          if (text === undefined) {
            if (ended) return;
            await new Promise<void>((r) => (wake = r));
            continue;
          }
          if (first) {
            first = false;
            await delay(TTS_FIRST_AUDIO_MS, options.signal);
            if (options.signal.aborted) return;
          }
          const words = text.split(/\s+/).filter((w) => w !== '');
          let t = offset;
          yield { type: 'words', words: words.map((w) => ({ text: w, start: ((t += (w.length + 1) * MS_PER_CHAR) - (w.length + 1) * MS_PER_CHAR) / 1000 })) };
          const samples = Math.round((text.length * MS_PER_CHAR * TTS_RATE) / 1000);
          offset += (samples / TTS_RATE) * 1000;
          const pcm = Buffer.alloc(samples * 2);
          for (let i = 0; i < samples; i++) pcm.writeInt16LE(Math.round(3000 * Math.sin((2 * Math.PI * 220 * i) / TTS_RATE)), i * 2);
          // 100 ms chunks, 10 ms apart: ten times real time, like a streaming TTS.
          for (let off = 0; off < pcm.length; off += 3200) {
            yield { type: 'audio', pcm: pcm.subarray(off, Math.min(pcm.length, off + 3200)) };
            await delay(10, options.signal);
            if (options.signal.aborted) return;
          }
        }
      },
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export interface WireFrame {
  /** performance.now() of the tick that wrote it. */
  at: number;
  /** The bot frame's number in push order (−1: silence). */
  seq: number;
}

/** The caller's side of the paced output: 8 kHz frames, one per tick of the shared clock, each one recorded. */
export class RecordingWire implements BotAudioSink, ClockSink {
  readonly sampleRate = 8000;
  readonly written: WireFrame[] = [];
  private readonly frames: number[] = [];
  private partial = 0;
  private nextSeq = 0;
  private paused = false;
  private playing = false;
  private listener: PlaybackListener | null = null;
  botFramesWritten = 0;

  get queuedFrames(): number {
    return this.frames.length;
  }
  push(pcm: Buffer): void {
    let bytes = this.partial + pcm.length;
    for (; bytes >= 320; bytes -= 320) this.frames.push(this.nextSeq++);
    this.partial = bytes;
  }
  flush(): void {
    if (this.partial > 0) this.frames.push(this.nextSeq++);
    this.partial = 0;
  }
  clear(): void {
    this.frames.length = 0;
    this.partial = 0;
  }
  setPaused(paused: boolean): void {
    this.paused = paused;
  }
  setPlaybackListener(listener: PlaybackListener | null): void {
    this.listener = listener;
  }
  tick(): void {
    const seq = this.paused ? undefined : this.frames.shift();
    this.written.push({ at: performance.now(), seq: seq ?? -1 });
    if (seq !== undefined) {
      this.botFramesWritten++;
      if (!this.playing) {
        this.playing = true;
        this.listener?.playbackStarted();
      }
    } else if (this.playing) {
      this.playing = false;
      this.listener?.playbackStopped();
    }
  }
}
