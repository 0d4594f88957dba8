// The metrics port of the provider bases. The bases count what only they see — each provider failure once, each
// failure they recovered from by retrying — through this port, so no provider imports prom-client and the call
// layer counts nothing on the providers' behalf. The registry injects it (ProviderRegistry's third argument);
// Metrics.providers (src/metrics.ts) implements it.

import type { Stage } from './failure.js';

export interface ProviderMetrics {
  /** One provider failure: `provider_errors_total{provider, stage}`. */
  failed(provider: string, stage: Stage): void;
  /**
   * A failure the base recovered from on its own (a dropped STT stream reconnected, an LLM request retried before
   * its first token): `provider_retries_total{provider, stage}`. The failure itself was counted by failed().
   */
  retried(provider: string, stage: Stage): void;
}

/** Counts nothing: providers built outside the daemon (warm-up, tools, unit tests). */
export const NO_PROVIDER_METRICS: ProviderMetrics = { failed: () => undefined, retried: () => undefined };
