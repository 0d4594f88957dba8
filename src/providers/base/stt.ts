// The STT base: what every streaming STT shares, so a provider file only speaks its protocol. It owns the
// once-only fatal report (never after the call's signal aborted), the idempotent close (also on the signal),
// transcript delivery that a throwing consumer cannot turn into a crash, dropped-audio accounting, the bounded
// backlog kept while a stream reconnects, the reconnect-once policy, which acts on `retryable`, and the count of
// every failure (provider_errors_total, once each, through the metrics port; meteredStt counts a refused open).

import { ProviderError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { SttOptions, SttProvider, SttStream, SttTranscript } from '../types.js';
import { NO_PROVIDER_METRICS, type ProviderMetrics } from './metrics.js';

export const STT_SAMPLE_RATE = 16_000;
export const STT_BYTES_PER_SECOND = STT_SAMPLE_RATE * 2;

export interface SttPolicy {
  /** A stream up this long after its reconnect earns the reconnect back (ms). Default: never. */
  stableAfterMs?: number;
}

export abstract class SttStreamBase implements SttStream {
  protected readonly log: Logger;
  private readonly metrics: ProviderMetrics;
  private readonly budget: ReconnectBudget;
  private fatalReported = false;
  private closing: Promise<void> | null = null;
  private dropped = 0;
  private readonly onAbort = (): void => void this.close();

  constructor(
    protected readonly provider: string,
    protected readonly o: SttOptions,
    policy: SttPolicy = {},
  ) {
    this.log = o.log.child({ stt: provider });
    this.metrics = o.metrics ?? NO_PROVIDER_METRICS;
    this.budget = new ReconnectBudget(policy.stableAfterMs ?? Number.POSITIVE_INFINITY);
  }

  abstract write(pcm: Int16Array): void;
  /** Releases everything (graceful where the protocol has a goodbye); called once. */
  protected abstract shutdown(): Promise<void>;

  close(): Promise<void> {
    this.closing ??= this.shutdown().finally(() => {
      if (this.dropped > 0) this.log.warn({ dropped_frames: this.dropped }, `${this.provider} stream dropped audio`);
    });
    return this.closing;
  }

  get isClosed(): boolean {
    return this.closing !== null;
  }

  get droppedFrames(): number {
    return this.dropped;
  }

  /** Once the stream runs: the call's end closes it. */
  protected listenForAbort(): void {
    this.o.signal.addEventListener('abort', this.onAbort, { once: true });
  }

  protected stopListening(): void {
    this.o.signal.removeEventListener('abort', this.onAbort);
  }

  protected deliver(t: SttTranscript): void {
    if (this.o.signal.aborted) return;
    try {
      this.o.onTranscript(t);
    } catch (err) {
      // Inside a socket or stream handler a throw would be an uncaught exception: the daemon must not die of it.
      this.log.error({ err }, `${this.provider} transcript handler failed`);
    }
  }

  /** A recoverable provider error: counted and reported, the stream goes on. */
  protected recoverable(err: ProviderError): void {
    this.metrics.failed(this.provider, 'stt');
    this.o.onError?.(err);
  }

  /** The stream is dead for good: counted and reported once, and never for a call that is ending anyway. */
  protected fatal(err: ProviderError): void {
    this.stopListening();
    if (this.fatalReported || this.o.signal.aborted) return;
    this.fatalReported = true;
    this.metrics.failed(this.provider, 'stt');
    this.log.warn({ err: err.message }, `${this.provider} stream failed`);
    this.o.onFatal(err);
  }

  /**
   * The live stream dropped with `err`: true when the provider should reconnect (once, see ReconnectBudget); the
   * drop is then counted as a failure the base recovered from. False: the caller reports `err` through fatal().
   */
  protected mayReconnect(err: ProviderError, openedAt: number): boolean {
    if (this.o.signal.aborted || !this.budget.take(err, openedAt)) return false;
    this.metrics.failed(this.provider, 'stt');
    this.metrics.retried(this.provider, 'stt');
    return true;
  }

  protected countDropped(): void {
    if (this.dropped === 0) this.log.warn(`${this.provider} stream cannot keep up: dropping audio`);
    this.dropped += 1;
  }
}

/**
 * Reconnect once, transparently (SPEC §3.3); a second drop ends the call. A stream that stayed up `stableAfterMs`
 * after its reconnect earns the reconnect back, so a blip an hour later in a long call is again transparent. Only
 * a retryable failure is worth a reconnect: a refused key stays refused.
 */
export class ReconnectBudget {
  private left = 1;

  constructor(private readonly stableAfterMs: number) {}

  /** Whether to reconnect after `err` on a stream that had been open since `openedAt` (ms epoch). */
  take(err: ProviderError, openedAt: number, now = Date.now()): boolean {
    if (!err.retryable) return false;
    if (this.left === 0 && openedAt > 0 && now - openedAt >= this.stableAfterMs) this.left = 1;
    if (this.left === 0) return false;
    this.left -= 1;
    return true;
  }
}

/** The newest `maxMs` of audio written while the stream is down; older audio is dropped through `onDrop`. */
export class AudioBacklog {
  private chunks: Buffer[] = [];
  private bytes = 0;

  constructor(
    private readonly maxMs: number,
    private readonly onDrop: () => void,
  ) {}

  push(pcm: Int16Array): void {
    // A copy: the caller may reuse its buffer once write() returns.
    const copy = Buffer.from(Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength));
    this.chunks.push(copy);
    this.bytes += copy.length;
    const limit = (this.maxMs / 1000) * STT_BYTES_PER_SECOND;
    while (this.bytes > limit) {
      const old = this.chunks.shift();
      if (old === undefined) break;
      this.bytes -= old.length;
      this.onDrop();
    }
  }

  /** Everything kept, oldest first; the backlog is empty afterwards. */
  drain(): Buffer[] {
    const out = this.chunks;
    this.chunks = [];
    this.bytes = 0;
    return out;
  }
}

/**
 * The provider as the registry hands it out: every stream it opens counts through `metrics`, and a refused open
 * (the stream never ran, so no base saw it) is counted here — unless the call ended meanwhile.
 */
export function meteredStt(provider: SttProvider, metrics: ProviderMetrics): SttProvider {
  return {
    name: provider.name,
    async open(options: SttOptions): Promise<SttStream> {
      try {
        return await provider.open({ ...options, metrics });
      } catch (err) {
        if (!options.signal.aborted && err instanceof ProviderError) metrics.failed(provider.name, 'stt');
        throw err;
      }
    },
  };
}
