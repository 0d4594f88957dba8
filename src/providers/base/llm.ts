// The LLM base (DESIGN.md "providers on a base"): a provider adapts its SDK's stream into steps; the base owns
// the per-request AbortController, cancellation by the caller's signal, the first-token and idle watchdogs, the
// mapping of every failure to a ProviderError, the cleanup of the HTTP stream, the count of every failed attempt
// (provider_errors_total, once each, through the metrics port) and one retry of a retryable failure that happened
// before the model's first token.
//
// Contract kept for the pipeline:
// - Abort: when request.signal aborts, the HTTP stream is cancelled at once and the iteration ENDS QUIETLY (no
//   throw, no further chunks). The caller tells an abort from a completed generation by its own signal.aborted.
// - Stalls: no token within firstTokenTimeoutMs of the request, or no step within idleTimeoutMs afterwards → the
//   request is aborted and a retryable ProviderError thrown. The watchdog only runs while waiting on the network,
//   never while the consumer holds a yielded chunk.

import { ProviderError } from '../../errors.js';
import type { LlmChunk, LlmClient, LlmRequest } from '../types.js';
import { backoff, isStall, providerFailure } from './failure.js';
import { NO_PROVIDER_METRICS, type ProviderMetrics } from './metrics.js';

/** What an adapter yields: chunks for the caller, or `progress` (a stream event that carried nothing to show). */
export type LlmStep = LlmChunk | { type: 'progress'; /** The model has started answering (tool call, finish). */ token: boolean };

export interface LlmAdapter {
  /** `<vendor>.<model>`: the name in metrics and logs. */
  readonly name: string;
  /** One generation through the SDK, cancelled by `signal`. Throws whatever the SDK throws. */
  generate(request: LlmRequest, signal: AbortSignal): AsyncIterable<LlmStep>;
  /** Any failure of generate() as a ProviderError (its kind decides `retryable`, see failure.ts). */
  toError(err: unknown): ProviderError;
  /** `openai LLM at api.openai.com`: the prefix of the watchdog's messages. */
  readonly where: string;
  /** Optional: loads what generate() needs (a lazily imported SDK). Not counted against the first-token budget. */
  prepare?(): Promise<void>;
}

export interface LlmPolicy {
  /** No first token within this long after the request → failure. Default 10000. */
  firstTokenTimeoutMs?: number;
  /** A stream that stalls this long between steps after the first token → failure. Default 15000. */
  idleTimeoutMs?: number;
  /**
   * Retry a retryable failure (not a stall: that already spent the budget) once when the model had not started
   * answering (no token, no tool call, so nothing reached the caller), after this backoff. Default: no retry (the
   * adapter's own tests see each request); the registry turns it on.
   */
  retryBackoffMs?: number;
  /** Where failed attempts and retries are counted (the registry sets it). Default: nowhere. */
  metrics?: ProviderMetrics;
}

export const DEFAULT_FIRST_TOKEN_TIMEOUT_MS = 10_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 15_000;

export function createStreamingLlm(adapter: LlmAdapter, policy: LlmPolicy = {}): LlmClient {
  const firstTokenTimeoutMs = policy.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_TIMEOUT_MS;
  const idleTimeoutMs = policy.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const metrics = policy.metrics ?? NO_PROVIDER_METRICS;
  /** Every failure of an attempt leaves through here: counted exactly once, whether or not it is retried. */
  const failed = (err: ProviderError): ProviderError => {
    metrics.failed(adapter.name, 'llm');
    return err;
  };

  async function* attempt(request: LlmRequest, progress: { started: boolean }): AsyncGenerator<LlmChunk, void, undefined> {
    const { signal } = request;
    if (signal.aborted) return;
    if (adapter.prepare !== undefined) {
      try {
        await adapter.prepare();
      } catch (err) {
        throw failed(adapter.toError(err));
      }
      if (signal.aborted) return;
    }
    // One controller per request: it cancels the HTTP exchange on caller abort, on stall, and on early exit.
    // Listening on the caller's (possibly call-long) signal ourselves keeps no listener behind after the turn.
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });

    const startedAt = performance.now();
    let gotFirstToken = false;
    let stallMessage: string | undefined;
    let watchdog: NodeJS.Timeout | undefined;
    const arm = (): void => {
      const ms = gotFirstToken ? idleTimeoutMs : Math.max(0, startedAt + firstTokenTimeoutMs - performance.now());
      watchdog = setTimeout(() => {
        stallMessage = gotFirstToken
          ? `${adapter.where}: stream stalled (no data for ${idleTimeoutMs} ms)`
          : `${adapter.where}: no first token within ${firstTokenTimeoutMs} ms`;
        controller.abort();
      }, ms);
    };
    const disarm = (): void => {
      if (watchdog !== undefined) clearTimeout(watchdog);
      watchdog = undefined;
    };
    /** After the SDK gave up or ended: an abort we caused is a stall, one the caller caused ends quietly. */
    const stalled = (): ProviderError | undefined =>
      signal.aborted || stallMessage === undefined ? undefined : providerFailure(adapter.name, 'llm', 'stall', stallMessage);

    const iterator = adapter.generate(request, controller.signal)[Symbol.asyncIterator]();
    let iteratorDone = false;
    try {
      for (;;) {
        arm();
        let next: IteratorResult<LlmStep>;
        try {
          next = await iterator.next();
        } catch (err) {
          iteratorDone = true;
          if (signal.aborted) return;
          throw failed(stalled() ?? adapter.toError(err));
        } finally {
          disarm();
        }
        if (next.done === true) {
          iteratorDone = true;
          break;
        }
        const step = next.value;
        if (step.type === 'progress') {
          if (step.token) gotFirstToken = progress.started = true;
          continue;
        }
        gotFirstToken = progress.started = true;
        yield step;
        if (signal.aborted) return;
      }
      // SDKs end quietly when their request was aborted: by the caller (quiet for us too) or by our watchdog.
      if (signal.aborted) return;
      const stall = stalled();
      if (stall !== undefined) throw failed(stall);
    } finally {
      disarm();
      signal.removeEventListener('abort', onAbort);
      // Early exit (consumer break, error) must cancel the HTTP stream.
      controller.abort();
      if (!iteratorDone) await iterator.return?.().catch(() => undefined);
    }
  }

  async function* stream(request: LlmRequest): AsyncGenerator<LlmChunk, void, undefined> {
    const progress = { started: false };
    const backoffMs = policy.retryBackoffMs;
    try {
      yield* attempt(request, progress);
      return;
    } catch (err) {
      // The one retry acts on `retryable` (failure.ts decides it), and only while a second attempt is invisible to
      // the caller and still has its time: not after the first token, not after a watchdog used the budget.
      const retry = backoffMs !== undefined && err instanceof ProviderError && err.retryable && !isStall(err) && !progress.started && !request.signal.aborted;
      if (!retry) throw err;
    }
    metrics.retried(adapter.name, 'llm');
    await backoff(backoffMs ?? 0, request.signal);
    yield* attempt(request, progress);
  }

  return { name: adapter.name, stream };
}
