// A rate limit on DTMF digits from a peer. Each `#` (and every 32 digits) makes an LLM run, so a peer sending
// 20,000 digits a second once caused 629 runs. A person presses at most a few keys a second: a token bucket with
// room for a quick burst admits any real key sequence, and `#` ends a turn at most once a second.

export interface DtmfGateOptions {
  /** Digits admitted back to back. */
  burst?: number;
  /** Digits admitted per second once the burst is spent. */
  perSecond?: number;
  /** Shortest time between two admitted `#`. */
  minTerminatorIntervalMs?: number;
}

export class DtmfGate {
  private readonly burst: number;
  private readonly perMs: number;
  private readonly minTerminatorIntervalMs: number;
  private tokens: number;
  private refilledAt: number;
  private lastTerminatorAt = -Infinity;
  /** Digits refused so far. */
  dropped = 0;

  constructor(options: DtmfGateOptions = {}, private readonly now: () => number = () => performance.now()) {
    this.burst = options.burst ?? 16;
    this.perMs = (options.perSecond ?? 8) / 1000;
    this.minTerminatorIntervalMs = options.minTerminatorIntervalMs ?? 1000;
    this.tokens = this.burst;
    this.refilledAt = now();
  }

  /** True when the digit may go on to the call; false (and counted) when it is over the limit. */
  admit(digit: string): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (t - this.refilledAt) * this.perMs);
    this.refilledAt = t;
    const terminatorTooSoon = digit === '#' && t - this.lastTerminatorAt < this.minTerminatorIntervalMs;
    if (this.tokens < 1 || terminatorTooSoon) {
      this.dropped++;
      return false;
    }
    this.tokens -= 1;
    if (digit === '#') this.lastTerminatorAt = t;
    return true;
  }
}
