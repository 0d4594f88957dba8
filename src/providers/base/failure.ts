// The one place that decides whether a provider failure is worth retrying, and the one redaction of provider
// secrets. Every provider reports its failures through `providerFailure`; the bases act on `retryable` (the STT
// base reconnects only after a retryable drop, the LLM base retries a retryable failure before the first token).

import { ProviderError, redactSecrets } from '../../errors.js';

export type Stage = 'stt' | 'llm' | 'tts';

/**
 * What went wrong, as far as retrying is concerned:
 * - `http`: the server answered with a status (at a request or a WebSocket upgrade): retry on 408, 429 and 5xx.
 * - `network`: refused, reset, DNS, TLS, a socket closed under us: the next attempt may well work.
 * - `stall`: the watchdog fired (no first token, no audio, no transcript): retry.
 * - `server`: the provider reported an error inside the stream; retried unless it carries a 4xx status.
 * - `malformed`: the provider sent something that breaks its own protocol: an immediate retry would repeat it.
 * - `refused`: the request cannot work as configured (no key, no voice, missing binary): never retried.
 */
export type FailureKind = 'http' | 'network' | 'stall' | 'server' | 'malformed' | 'refused';

export function isRetryable(kind: FailureKind, status?: number): boolean {
  switch (kind) {
    case 'http':
    case 'server':
      if (status === undefined || status === 0) return kind === 'server';
      return status === 408 || status === 429 || status >= 500;
    case 'network':
    case 'stall':
      return true;
    case 'malformed':
    case 'refused':
      return false;
  }
}

export interface FailureOptions {
  status?: number;
  cause?: unknown;
}

/** A ProviderError that remembers its kind; its `retryable` follows the rule above and nothing else. */
export class ProviderFailure extends ProviderError {
  constructor(
    provider: string,
    stage: Stage,
    readonly kind: FailureKind,
    message: string,
    options: FailureOptions = {},
  ) {
    super(provider, stage, message, {
      ...(options.cause !== undefined ? { cause: options.cause } : {}),
      retryable: isRetryable(kind, options.status),
    });
  }
}

/** The way every provider reports a failure. */
export function providerFailure(provider: string, stage: Stage, kind: FailureKind, message: string, options: FailureOptions = {}): ProviderFailure {
  return new ProviderFailure(provider, stage, kind, message, options);
}

/** A watchdog fired (ours or the SDK's): the attempt already used up the time it was given. */
export function isStall(err: unknown): boolean {
  return err instanceof ProviderFailure && err.kind === 'stall';
}

/** Blanks out the provider's own key (even when a server echoes it back) and credential-looking strings. */
export function redactorFor(...keys: string[]): (text: string) => string {
  const secrets = keys.filter((k) => k.length >= 4);
  return (text: string) => redactSecrets(secrets.reduce((t, key) => t.split(key).join('***'), text));
}

/** The host of a base URL for messages ('' when it is not a URL). */
export function hostOf(baseUrl: string): string {
  try {
    return new URL(baseUrl).host;
  } catch {
    return '';
  }
}

/** The most specific text of an error chain: undici hides `connect ECONNREFUSED 127.0.0.1:1` in `cause`. */
export function describeCause(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    if (current instanceof Error) {
      if (current.message !== '' && !parts.includes(current.message)) parts.push(current.message);
      current = current.cause;
    } else if (typeof current === 'object' && 'message' in current && typeof current.message === 'string') {
      // ws reports a failed handshake as an ErrorEvent: a message, not an Error.
      parts.push(current.message);
      break;
    } else {
      parts.push(typeof current === 'string' ? current : JSON.stringify(current));
      break;
    }
  }
  return parts.length > 0 ? parts.join(': ') : 'unknown error';
}

/** Waits `ms`, or less when the signal aborts first (never rejects). */
export function backoff(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted || ms <= 0) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
