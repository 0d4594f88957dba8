// The TTS base: what every TTS provider shares, so that a provider file only speaks its protocol. A session owns
// its turns and closes them with itself (idempotent close, also on the call's signal); a turn owns its ordered
// event queue, its single consumer, whole-sample audio, the stall watchdog and cancellation: a barge-in (the
// turn's signal) or a consumer that stops reading cancels the provider's work for that turn and drops what is
// queued, so nothing of a cancelled turn is ever played. A failed turn is counted once (provider_errors_total,
// through the metrics port the session got from the registry); meteredTts counts a session that cannot open.

import { ProviderError } from '../../errors.js';
import type { TtsEvent, TtsProvider, TtsSession, TtsSessionOptions, TtsTurn, TtsTurnOptions, TtsWord } from '../types.js';
import { providerFailure } from './failure.js';
import { NO_PROVIDER_METRICS, type ProviderMetrics } from './metrics.js';

export abstract class TtsTurnBase implements TtsTurn {
  finished = false;
  protected ended = false;
  /** At least one sentence went to the provider: end() must tell it, abort() must cancel it. */
  protected sentAny = false;
  private failure: ProviderError | null = null;
  private readonly queue: TtsEvent[] = [];
  private wake: (() => void) | null = null;
  private iterated = false;
  /** An odd trailing byte of a chunk, prepended to the next so audio events stay whole samples. */
  private carry: Buffer | null = null;
  /** A request went out and nothing came back yet: a silent provider now is a stall. */
  private awaitingReply = false;
  private stallTimer: NodeJS.Timeout | null = null;
  private readonly onAbort = (): void => this.abort();
  /** Called once when the turn finishes, whatever the reason (the session forgets it). */
  onFinished: ((turn: TtsTurnBase) => void) | null = null;
  /** Where a failure of this turn is counted: the session's port, set as the session starts the turn. */
  metrics: ProviderMetrics = NO_PROVIDER_METRICS;

  constructor(
    protected readonly provider: string,
    protected readonly signal: AbortSignal,
    /** 0 = no stall watchdog (a local process that is killed instead). */
    private readonly stallTimeoutMs: number,
  ) {
    if (signal.aborted) this.finish(null);
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Sends one sentence (already trimmed, never empty) to the provider. */
  protected abstract sendText(text: string): void;
  /** No more text: the provider finishes the audio of what it was sent, then calls finish(null). */
  protected abstract sendEnd(): void;
  /** Barge-in or a stall: the provider stops generating this turn (best effort, never throws). */
  protected abstract cancelProvider(): void;
  /** Optional: a queued event was handed to the consumer (flow control of a local process). */
  protected consumed(_event: TtsEvent): void {}

  say(text: string): void {
    if (this.ended || this.finished || text.trim() === '') return;
    this.sentAny = true;
    this.sendText(text);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.finished) return;
    if (!this.sentAny) {
      this.finish(null);
      return;
    }
    this.sendEnd();
  }

  async *events(): AsyncGenerator<TtsEvent> {
    if (this.iterated) throw new Error('TtsTurn.events() can be iterated only once');
    this.iterated = true;
    try {
      for (;;) {
        const event = this.queue.shift();
        if (event !== undefined) {
          this.consumed(event);
          yield event;
          continue;
        }
        if (this.finished) {
          if (this.failure !== null) throw this.failure;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      // The consumer stopped early (break/throw): nobody will play the rest, so the provider's work is cancelled.
      if (!this.finished) this.abort();
    }
  }

  /** Ends the event stream after the events already queued (the turn's last audio, then the error if any). */
  finish(error: ProviderError | null): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = error;
    if (error !== null) this.metrics.failed(this.provider, 'tts');
    this.clearStallTimer();
    this.signal.removeEventListener('abort', this.onAbort);
    this.onFinished?.(this);
    this.wakeUp();
  }

  /** Ends the stream at once, dropping queued audio (an abort, or the session closing). */
  discard(): void {
    this.queue.length = 0;
    this.finish(null);
  }

  /** Barge-in: the provider cancels; nothing more of this turn may be played, not even what is queued. */
  abort(): void {
    if (this.finished) return;
    if (this.sentAny) this.cancelProvider();
    this.discard();
  }

  /** s16le audio of any length; an odd byte waits for the next chunk. */
  protected pushAudio(bytes: Buffer): void {
    if (this.finished) return;
    let buf = bytes;
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, buf]);
      this.carry = null;
    }
    if (buf.length % 2 === 1) {
      this.carry = Buffer.from(buf.subarray(buf.length - 1));
      buf = buf.subarray(0, buf.length - 1);
    }
    if (buf.length > 0) this.push({ type: 'audio', pcm: buf });
  }

  protected pushWords(words: TtsWord[]): void {
    if (!this.finished && words.length > 0) this.push({ type: 'words', words });
  }

  /** A request went out: from now on, silence for stallTimeoutMs is a stall. */
  protected expectReply(): void {
    this.awaitingReply = true;
    this.armStallTimer();
  }

  /** The provider answered (audio, timing, anything): the stall clock restarts, or stops if nothing is owed. */
  protected heardFromProvider(): void {
    this.awaitingReply = false;
    this.armStallTimer();
  }

  private push(event: TtsEvent): void {
    this.queue.push(event);
    this.wakeUp();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private armStallTimer(): void {
    // After end() the provider owes the rest of the audio and its end marker, so silence is a stall then too.
    if (this.stallTimeoutMs <= 0 || this.finished || !(this.awaitingReply || (this.ended && this.sentAny))) {
      this.clearStallTimer();
      return;
    }
    if (this.stallTimer !== null) {
      this.stallTimer.refresh();
      return;
    }
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (this.finished) return;
      this.cancelProvider();
      this.finish(providerFailure(this.provider, 'tts', 'stall', `${this.stallWhat()} stalled: no reply for ${this.stallTimeoutMs} ms`));
    }, this.stallTimeoutMs);
  }

  /** `Cartesia TTS`: how the stall message names the provider. */
  protected stallWhat(): string {
    return `${this.provider} TTS`;
  }

  private clearStallTimer(): void {
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }
}

export abstract class TtsSessionBase<T extends TtsTurnBase = TtsTurnBase> implements TtsSession {
  abstract readonly name: string;
  abstract readonly sampleRate: number;
  protected readonly turns = new Set<T>();
  protected readonly sessionSignal: AbortSignal;
  private readonly metrics: ProviderMetrics;
  /** A connection failure no redial can fix: every later turn fails with it, without dialling. */
  private refusedWith: ProviderError | null = null;
  private closing: Promise<void> | null = null;
  private readonly onSessionAbort = (): void => void this.close();

  constructor(options: Pick<TtsSessionOptions, 'signal' | 'metrics'>) {
    this.sessionSignal = options.signal;
    this.metrics = options.metrics ?? NO_PROVIDER_METRICS;
    if (this.sessionSignal.aborted) queueMicrotask(() => void this.close());
    else this.sessionSignal.addEventListener('abort', this.onSessionAbort, { once: true });
  }

  protected abstract createTurn(options: TtsTurnOptions): T;
  /** Releases the session's connection or processes; called once, after every turn was discarded. */
  protected abstract release(): Promise<void>;
  /** A new turn is live (e.g. reconnect a socket lost while idle, so it is ready by the first say()). */
  protected turnStarted(_turn: T): void {}

  /**
   * A socket provider's (re)connection failed with `err`; the turns waiting on it fail with it. The base acts on
   * `retryable` (failure.ts): a retryable failure (refused, reset, 5xx) lets the next turn dial again; one that is
   * not (a rejected key, 4xx) ends the dialling — each later turn fails with it at once, so a call does not spend
   * a connection attempt per turn on what cannot work (two failed turns end it with tts_error).
   */
  protected connectFailed(err: ProviderError): void {
    if (!err.retryable) this.refusedWith ??= err;
  }

  get isClosing(): boolean {
    return this.closing !== null;
  }

  startTurn(options: TtsTurnOptions): TtsTurn {
    const turn = this.createTurn(options);
    turn.metrics = this.metrics;
    if (this.closing !== null) {
      turn.discard();
      return turn;
    }
    if (turn.finished) return turn;
    if (this.refusedWith !== null) {
      turn.finish(this.refusedWith);
      return turn;
    }
    this.turns.add(turn);
    turn.onFinished = (t) => this.turns.delete(t as T);
    this.turnStarted(turn);
    return turn;
  }

  close(): Promise<void> {
    if (this.closing === null) {
      this.sessionSignal.removeEventListener('abort', this.onSessionAbort);
      for (const turn of [...this.turns]) turn.discard();
      this.turns.clear();
      this.closing = this.release();
    }
    return this.closing;
  }
}

/**
 * The provider as the registry hands it out: its sessions count through `metrics`, and a session that cannot open
 * (refused key, unreachable server, missing binary) is counted here — unless the call ended meanwhile.
 */
export function meteredTts(provider: TtsProvider, metrics: ProviderMetrics): TtsProvider {
  return {
    name: provider.name,
    async open(options: TtsSessionOptions): Promise<TtsSession> {
      try {
        return await provider.open({ ...options, metrics });
      } catch (err) {
        if (!options.signal.aborted && err instanceof ProviderError) metrics.failed(provider.name, 'tts');
        throw err;
      }
    },
  };
}
