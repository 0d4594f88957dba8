// What the console keeps of the calls this process ended, for the past-calls view: the termination reason, the
// provider error, the barge-ins and the turn timeline, which the pipecatcalls table does not hold (SPEC §6.2 fixes
// its columns). Bounded: the MAX_ENDED most recently ended calls (the oldest forgotten first), the latest
// MAX_ENDED_TURNS turns of each.

import type { Call, Interruption, ProviderFailure } from '../calls/call.js';
import type { TurnRecord } from '../pipeline/turn-record.js';

export const MAX_ENDED = 200;
/** Turns kept per ended call (the latest): bounds the memory at 200 × 100 records however long the calls were. */
export const MAX_ENDED_TURNS = 100;

export interface EndedCall {
  id: string;
  reason: string;
  /** Epoch milliseconds. */
  endedAt: number;
  providerFailure: ProviderFailure | null;
  interruptions: Interruption[];
  latency: Record<string, number>;
  turns: TurnRecord[];
}

export class EndedCalls {
  /** Insertion order is age order: a Map iterates oldest first. */
  private readonly calls = new Map<string, EndedCall>();

  constructor(private readonly max = MAX_ENDED) {}

  add(call: Call): void {
    this.calls.delete(call.id);
    this.calls.set(call.id, {
      id: call.id,
      reason: call.terminateReason ?? 'error',
      endedAt: Date.now(),
      providerFailure: call.providerFailure,
      interruptions: [...call.interruptions],
      latency: { ...call.latency },
      turns: call.turns().slice(-MAX_ENDED_TURNS),
    });
    for (const id of this.calls.keys()) {
      if (this.calls.size <= this.max) break;
      this.calls.delete(id);
    }
  }

  get(id: string): EndedCall | undefined {
    return this.calls.get(id);
  }

  get size(): number {
    return this.calls.size;
  }
}
