// The operator console's server side without a browser: a turn record as timeline bars, levels of PCM, the
// histogram quantile of the headroom samples, the LRU of ended calls, what a call keeps of its barge-ins and
// provider errors (redacted), and a past call's row as the page gets it.

import { describe, expect, it } from 'vitest';
import { Call, levelDbfs } from '../../src/calls/call.js';
import { CallObserver } from '../../src/calls/call-observer.js';
import { DEFAULT_VAD_CONFIG } from '../../src/calls/create-request.js';
import { EndedCalls } from '../../src/console/ended-calls.js';
import { HeadroomSampler, quantileBetween } from '../../src/console/headroom.js';
import { TIMELINE_STAGES, callSummary, pastCallView, turnTimeline } from '../../src/console/views.js';
import { Metrics } from '../../src/metrics.js';
import type { Pipecatcall } from '../../src/model/pipecatcall.js';
import { NIL_UUID } from '../../src/model/uuid.js';
import { TurnTracker, type TurnRecord } from '../../src/pipeline/turn-record.js';
import { testLogger } from '../helpers/services.js';
import { waitUntil } from '../helpers/wait.js';

function row(id: string, over: Partial<Pipecatcall> = {}): Pipecatcall {
  return {
    id,
    customer_id: NIL_UUID,
    activeflow_id: NIL_UUID,
    reference_type: 'call',
    reference_id: NIL_UUID,
    host_id: '127.0.0.1',
    llm_type: 'local.echo',
    llm_messages: [],
    stt_type: 'sphinx',
    stt_language: '',
    tts_type: 'espeak',
    tts_language: '',
    tts_voice_id: '',
    tm_create: '2026-12-07 03:00:00.000000',
    tm_update: '9999-01-01 00:00:00.000000',
    tm_delete: '9999-01-01 00:00:00.000000',
    ...over,
  };
}

const newCall = (id: string): Call => new Call({ row: row(id), log: testLogger(), vadConfig: { ...DEFAULT_VAD_CONFIG }, aicall: null });
const uuid = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

function record(over: Partial<TurnRecord>): TurnRecord {
  const tracker = new TurnTracker();
  return { ...tracker.current(), ...over };
}

describe('turnTimeline', () => {
  it('draws each stage from its cause to its result, in the stage order, relative to the turn start', () => {
    const t0 = 1_700_000_000_000;
    const tl = turnTimeline(
      record({
        index: 3,
        onsetAt: t0,
        vadStartAt: t0 + 200,
        vadStopAt: t0 + 1300,
        speechEndAt: t0 + 1000,
        finalAt: t0 + 1250,
        endAt: t0 + 1400,
        llmRequestAt: t0 + 1400,
        llmFirstTokenAt: t0 + 1900,
        ttsRequestAt: t0 + 1950,
        ttsFirstAudioAt: t0 + 2050,
        firstBotFrameAt: t0 + 2070,
        bargeInAt: t0 + 150,
        interruption: 'confirmed',
        ending: 'complete',
        text: 'hello',
      }),
    );
    expect(tl).not.toBeNull();
    expect(tl?.start).toBe(t0);
    expect(tl?.bars).toEqual([
      { stage: 'speech', from: 0, to: 1000 },
      { stage: 'vad_stop', from: 1000, to: 1300 },
      { stage: 'stt_final', from: 1000, to: 1250 },
      { stage: 'turn_end', from: 1000, to: 1400 },
      { stage: 'llm_first_token', from: 1400, to: 1900 },
      { stage: 'tts_first_audio', from: 1950, to: 2050 },
      { stage: 'first_bot_frame', from: 2050, to: 2070 },
    ]);
    expect(tl?.bars.map((b) => b.stage)).toEqual([...TIMELINE_STAGES]);
    expect(tl?.barge_in).toEqual({ at: 150, kind: 'confirmed' });
    expect(tl?.voice_to_voice_ms).toBe(1070);
  });

  it('leaves out the stages that did not happen, and has no turn without a step', () => {
    const t0 = 1_700_000_000_000;
    const tl = turnTimeline(record({ index: 1, vadStartAt: t0, vadStopAt: t0 + 500, bargeInAt: t0 + 10 }));
    expect(tl?.bars).toEqual([{ stage: 'speech', from: 0, to: 500 }]);
    expect(tl?.barge_in).toEqual({ at: 10, kind: 'pending' });
    expect(tl?.voice_to_voice_ms).toBeNull();
    expect(turnTimeline(record({}))).toBeNull();
  });
});

describe('levels and headroom figures', () => {
  it('levelDbfs is the RMS in dBFS: full scale near 0, silence -96, nothing null', () => {
    const square = Buffer.alloc(320);
    for (let i = 0; i < 160; i++) square.writeInt16LE(i % 2 === 0 ? 32767 : -32767, i * 2);
    expect(levelDbfs(square)).toBeCloseTo(0, 0);
    const quiet = Buffer.alloc(320);
    for (let i = 0; i < 160; i++) quiet.writeInt16LE(328, i * 2); // 1 % of full scale: -40 dB
    expect(levelDbfs(quiet)).toBeCloseTo(-40, 0);
    expect(levelDbfs(Buffer.alloc(320))).toBe(-96);
    expect(levelDbfs(null)).toBeNull();
    expect(levelDbfs(Buffer.alloc(10), 10)).toBeNull(); // header only
  });

  it('quantileBetween interpolates within the bucket of the observations between two readings', () => {
    const le = [0.001, 0.005, 0.01, Infinity];
    const before = { le, counts: [10, 10, 10, 10] };
    // 100 new observations: 90 ≤ 1 ms, 9 in (5, 10] ms, 1 past 10 ms.
    const after = { le, counts: [100, 100, 109, 110] };
    expect(quantileBetween(before, after, 0.5)).toBeCloseTo(0.000556, 5);
    expect(quantileBetween(before, after, 0.99)).toBeCloseTo(0.01, 5);
    expect(quantileBetween(before, before, 0.99)).toBe(0);
    expect(quantileBetween(null, { le, counts: [0, 0, 0, 5] }, 0.99)).toBe(0.01);
  });
});

describe('HeadroomSampler', () => {
  it('samples only after a request, and stops by itself when nobody asks any more', async () => {
    let calls = 3;
    const sampler = new HeadroomSampler(
      {
        liveCalls: () => calls,
        admission: () => ({ admitted: 7, refused: 2 }),
        clockLateness: () => Promise.resolve({ le: [0.005, Infinity], counts: [10, 10] }),
      },
      20,
      300,
    );
    expect(sampler.running).toBe(false);
    expect(sampler.samples()).toEqual([]); // the first request starts it
    expect(sampler.running).toBe(true);
    await waitUntil('two samples', () => sampler.size >= 2);
    calls = 4;
    const [first] = sampler.samples();
    expect(first).toMatchObject({ calls: 3, admitted: 7, refused: 2, clock_late_p99_ms: 0 });
    expect(first?.core_busy.length).toBeGreaterThan(0);
    const newer = sampler.samples(first?.t ?? 0);
    expect(newer.every((x) => x.t > (first?.t ?? 0))).toBe(true);
    await waitUntil('the sampler to stop when idle', () => !sampler.running);
    const held = sampler.size;
    expect(held).toBeGreaterThan(0); // the ring is kept
    sampler.stop();
  });
});

describe('what a call keeps for the console', () => {
  it('records barge-ins with what was heard, and the provider error redacted', () => {
    const call = newCall(uuid(1));
    const observer = new CallObserver(call, () => undefined, new Metrics({ defaultMetrics: false }));
    observer.interrupted('false');
    observer.interrupted('confirmed');
    observer.botLlm('Hello, this is');
    observer.interrupted('confirmed');
    observer.botLlmStarted(); // nothing of that reply was heard: recorded without text
    expect(call.interruptions.map((i) => [i.kind, i.heard])).toEqual([
      ['false', ''],
      ['confirmed', 'Hello, this is'],
      ['confirmed', ''],
    ]);
    observer.providerError('stt', 'deepgram', new Error('connect to wss://user:hunter2@api.example failed, key sk-abcdefghijklmnop'));
    expect(call.providerFailure?.stage).toBe('stt');
    expect(call.providerFailure?.message).not.toContain('hunter2');
    expect(call.providerFailure?.message).not.toContain('sk-abcdefghijklmnop');
    expect(call.providerFailure?.message).toContain('connect to wss://user:***@api.example failed');
    const summary = callSummary(call);
    expect(summary['provider_error']).toMatchObject({ stage: 'stt', provider: 'deepgram' });
    expect((summary['interruptions'] as unknown[]).length).toBe(3);
  });

  it('keeps the most recently ended calls only, the oldest forgotten first', () => {
    const ended = new EndedCalls(3);
    for (let n = 1; n <= 5; n++) {
      const call = newCall(uuid(n));
      call.terminateReason = n === 5 ? 'llm_error' : 'hangup';
      ended.add(call);
    }
    expect(ended.size).toBe(3);
    expect(ended.get(uuid(1))).toBeUndefined();
    expect(ended.get(uuid(2))).toBeUndefined();
    expect(ended.get(uuid(3))?.reason).toBe('hangup');
    expect(ended.get(uuid(5))?.reason).toBe('llm_error');
  });

  it('shows a past call with its duration, and its end reason only while this process knows it', () => {
    const r = row(uuid(7), { tm_create: '2026-12-07 03:00:00.250000', tm_delete: '2026-12-07 03:01:05.750000' });
    const unknown = pastCallView(r, undefined);
    expect(unknown).toMatchObject({ id: uuid(7), duration_seconds: 65.5, reason: null, provider_error: null, turn_count: null });
    const call = newCall(uuid(7));
    call.terminateReason = 'tts_error';
    call.providerFailure = { stage: 'tts', provider: 'cartesia', message: 'HTTP 401', at: 1 };
    const ended = new EndedCalls();
    ended.add(call);
    expect(pastCallView(r, ended.get(uuid(7)))).toMatchObject({
      reason: 'tts_error',
      provider_error: { stage: 'tts', provider: 'cartesia', message: 'HTTP 401' },
      turn_count: 0,
    });
  });
});
