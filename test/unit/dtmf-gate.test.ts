import { describe, expect, it } from 'vitest';
import { DtmfGate } from '../../src/transports/audiosocket/dtmf-gate.js';

describe('DtmfGate', () => {
  it('admits a quick 16-digit burst and a person-paced sequence, refuses a flood', () => {
    let now = 0;
    const gate = new DtmfGate({}, () => now);
    expect([...'4111111111111111'].every((d) => gate.admit(d))).toBe(true);
    // The burst is spent: the next digit waits for the bucket (8 per second).
    expect(gate.admit('1')).toBe(false);
    now += 125;
    expect(gate.admit('1')).toBe(true);
    // 20,000 digits within one second: about 8 more get through.
    let admitted = 0;
    for (let i = 0; i < 20_000; i++) {
      now += 0.05;
      if (gate.admit(String(i % 10))) admitted++;
    }
    expect(admitted).toBeLessThanOrEqual(9);
    expect(gate.dropped).toBeGreaterThan(19_990);
  });

  it('lets # end a turn at most once a second', () => {
    let now = 0;
    const gate = new DtmfGate({}, () => now);
    expect(gate.admit('#')).toBe(true);
    now += 200;
    expect(gate.admit('#')).toBe(false);
    expect(gate.admit('5')).toBe(true);
    now += 800;
    expect(gate.admit('#')).toBe(true);
  });
});
