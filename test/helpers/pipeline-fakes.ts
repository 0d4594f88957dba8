// In-process stand-ins for unit tests of the pipeline: an LLM and a TTS driven by scripts, a sink that records
// what reaches the "wire", and an observer that records events. Network fakes live in test/fakes/.

import type { BotAudioSink, PlaybackListener } from '../../src/pipeline/audio-sink.js';
import type { PipelineObserver } from '../../src/pipeline/observer.js';
import type { LlmChunk, LlmClient, LlmRequest, TtsEvent, TtsSession, TtsTurn, TtsTurnOptions } from '../../src/providers/types.js';
import type { ChatMessage } from '../../src/model/pipecatcall.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class ScriptedLlm implements LlmClient {
  readonly name = 'scripted';
  readonly requests: ChatMessage[][] = [];
  aborted = 0;
  /** Each run takes the next script; past the end the last one repeats. */
  constructor(
    private readonly scripts: Array<{ chunks: LlmChunk[]; delayMs?: number; fail?: Error }>,
  ) {}

  async *stream(req: LlmRequest): AsyncIterable<LlmChunk> {
    this.requests.push(req.messages.map((m) => ({ ...m })));
    const script = this.scripts[Math.min(this.requests.length - 1, this.scripts.length - 1)];
    if (script === undefined) return;
    for (const chunk of script.chunks) {
      if (script.delayMs !== undefined) await sleep(script.delayMs);
      if (req.signal.aborted) {
        this.aborted++;
        return;
      }
      yield chunk;
    }
    if (script.fail !== undefined) throw script.fail;
  }
}

/** 10 ms of 16 kHz audio per character, in one chunk per sentence, with a words event per word. */
export class ScriptedTts implements TtsSession {
  readonly name = 'scripted-tts';
  readonly sampleRate = 16000;
  readonly sentences: string[] = [];
  cancelled = 0;
  closed = false;
  failNext = 0;

  startTurn(options: TtsTurnOptions): TtsTurn {
    const queue: string[] = [];
    let ended = false;
    let wake: (() => void) | null = null;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the turn object's methods report to the session
    const tts = this;
    const poke = (): void => {
      wake?.();
      wake = null;
    };
    options.signal.addEventListener('abort', () => {
      tts.cancelled++;
      poke();
    });
    return {
      say(text: string) {
        tts.sentences.push(text);
        queue.push(text);
        poke();
      },
      end() {
        ended = true;
        poke();
      },
      async *events(): AsyncIterable<TtsEvent> {
        let offset = 0;
        if (tts.failNext > 0) {
          tts.failNext--;
          await sleep(5);
          throw new Error('scripted TTS failure');
        }
        for (;;) {
          if (options.signal.aborted) return;
          const text = queue.shift();
          if (text === undefined) {
            if (ended) return;
            await new Promise<void>((r) => (wake = r));
            continue;
          }
          await sleep(2);
          const words = text.split(/\s+/).filter((w) => w !== '');
          let t = offset;
          yield { type: 'words', words: words.map((w) => { const e = { text: w, start: t }; t += (w.length + 1) * 0.01; return e; }) };
          const samples = text.length * 160;
          offset += samples / 16000;
          yield { type: 'audio', pcm: Buffer.alloc(samples * 2, 1) };
        }
      },
    };
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** A sink with a manual clock: tick() plays one 20 ms frame like the shared output clock would. */
export class ManualSink implements BotAudioSink {
  readonly sampleRate = 16000;
  private readonly frames: number[] = [];
  private partial = 0;
  private listener: PlaybackListener | null = null;
  private playing = false;
  botFramesWritten = 0;
  cleared = 0;
  paused = false;

  get queuedFrames(): number {
    return this.frames.length;
  }

  push(pcm: Buffer): void {
    let bytes = this.partial + pcm.length;
    while (bytes >= 640) {
      this.frames.push(640);
      bytes -= 640;
    }
    this.partial = bytes;
  }

  flush(): void {
    if (this.partial > 0) this.frames.push(640);
    this.partial = 0;
  }

  clear(): void {
    this.frames.length = 0;
    this.partial = 0;
    this.cleared++;
  }

  setPlaybackListener(l: PlaybackListener | null): void {
    this.listener = l;
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
  }

  tick(n = 1): void {
    for (let i = 0; i < n; i++) {
      if (!this.paused && this.frames.shift() !== undefined) {
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
}

export class RecordingObserver implements PipelineObserver {
  readonly events: Array<[string, string?]> = [];
  readonly errors: Array<[string, string]> = [];
  readonly latencies: Array<[string, number]> = [];
  interruptions = 0;
  userStartedSpeaking(): void {}
  userStoppedSpeaking(): void {}
  userTranscription(text: string, final: boolean): void {
    if (final) this.events.push(['message_user_transcription', text]);
  }
  userLlm(text: string): void {
    this.events.push(['message_user_llm', text]);
  }
  botLlmStarted(): void {}
  botLlmText(): void {}
  botLlmStopped(): void {}
  botLlm(text: string): void {
    this.events.push(['message_bot_llm', text]);
  }
  botTranscription(s: string): void {
    this.events.push(['message_bot_transcription', s]);
  }
  botStartedSpeaking(): void {}
  botStoppedSpeaking(): void {}
  readonly interruptionKinds: string[] = [];
  interrupted(kind: 'confirmed' | 'false' = 'confirmed'): void {
    this.interruptionKinds.push(kind);
    if (kind === 'confirmed') this.interruptions++;
  }
  providerError(stage: string, provider: string): void {
    this.errors.push([stage, provider]);
  }
  latency(kind: string, s: number): void {
    this.latencies.push([kind, s]);
  }
  activity(): void {}
}
