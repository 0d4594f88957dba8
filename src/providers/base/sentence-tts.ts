// TTS providers whose API is one streaming HTTP request per piece of text (OpenAI speech, Deepgram Aura REST):
// the provider only turns one sentence into a stream of PCM bytes; this module runs a turn's sentences one after
// another, cancels the request in flight on barge-in (AbortSignal), watches for stalls through the TTS base and
// reports one timing entry per sentence at the start of its audio (these APIs give no word timestamps).

import { ProviderError } from '../../errors.js';
import type { TtsSessionOptions, TtsTurnOptions } from '../types.js';
import { TtsSessionBase, TtsTurnBase } from './tts.js';

export interface SentenceSynthesizer {
  readonly name: string;
  /** Sample rate of the PCM the requests return (s16le mono). */
  readonly sampleRate: number;
  /** One sentence as PCM bytes; rejects/throws a ProviderError (the adapter maps its SDK's errors). */
  synthesize(text: string, signal: AbortSignal): AsyncIterable<Uint8Array>;
  /** Any failure of synthesize() as a ProviderError. */
  toError(err: unknown): ProviderError;
}

export class SentenceTtsSession extends TtsSessionBase<SentenceTurn> {
  readonly name: string;
  readonly sampleRate: number;

  constructor(
    private readonly synth: SentenceSynthesizer,
    options: TtsSessionOptions,
    private readonly stallTimeoutMs: number,
  ) {
    super(options);
    this.name = synth.name;
    this.sampleRate = synth.sampleRate;
  }

  protected createTurn(options: TtsTurnOptions): SentenceTurn {
    return new SentenceTurn(this.synth, options.signal, this.stallTimeoutMs);
  }

  protected release(): Promise<void> {
    // Turns were discarded: each cancelled its own request.
    return Promise.resolve();
  }
}

class SentenceTurn extends TtsTurnBase {
  private readonly sentences: string[] = [];
  private running = false;
  private readonly cancel = new AbortController();
  private bytes = 0;

  constructor(
    private readonly synth: SentenceSynthesizer,
    signal: AbortSignal,
    stallTimeoutMs: number,
  ) {
    super(synth.name, signal, stallTimeoutMs);
  }

  protected sendText(text: string): void {
    this.sentences.push(text.trim());
    if (!this.running) void this.run();
  }

  protected sendEnd(): void {
    if (!this.running && this.sentences.length === 0) this.finish(null);
  }

  protected cancelProvider(): void {
    this.sentences.length = 0;
    this.cancel.abort();
  }

  override discard(): void {
    this.cancelProvider();
    super.discard();
  }

  /** Speaks the queued sentences in order; the turn ends after the last one once end() was called. */
  private async run(): Promise<void> {
    this.running = true;
    try {
      for (let text = this.sentences.shift(); text !== undefined; text = this.sentences.shift()) {
        if (this.finished) return;
        this.pushWords([{ text, start: Math.floor(this.bytes / 2) / this.synth.sampleRate }]);
        this.expectReply();
        try {
          for await (const chunk of this.synth.synthesize(text, this.cancel.signal)) {
            if (this.finished) return;
            this.heardFromProvider();
            this.expectReply();
            this.bytes += chunk.byteLength;
            this.pushAudio(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          }
        } catch (err) {
          if (!this.finished && !this.cancel.signal.aborted) this.finish(this.synth.toError(err));
          return;
        }
        this.heardFromProvider();
      }
      if (this.ended) this.finish(null);
    } finally {
      this.running = false;
    }
  }
}

/** A provider built on SentenceTtsSession: open() checks what it can before the call relies on it. */
export function sentenceTtsProvider(
  name: string,
  make: (options: TtsSessionOptions) => SentenceSynthesizer,
  stallTimeoutMs = 10_000,
): { name: string; open(options: TtsSessionOptions): Promise<SentenceTtsSession> } {
  return {
    name,
    open(options: TtsSessionOptions): Promise<SentenceTtsSession> {
      try {
        return Promise.resolve(new SentenceTtsSession(make(options), options, stallTimeoutMs));
      } catch (err) {
        return Promise.reject(err instanceof ProviderError ? err : new ProviderError(name, 'tts', String(err)));
      }
    },
  };
}
