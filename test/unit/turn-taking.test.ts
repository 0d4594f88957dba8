// Turn-taking (issue 13) on the real processors with in-process providers: reversible barge-in (pause, then resume
// or cancel), preemptive replies that are thrown away unheard when the turn goes on, and the per-turn record.
// Behaviour only: the windows are scaled down so the tests are quick, and no assertion depends on a precise time.

import { describe, expect, it } from 'vitest';
import { parseCreateRequest } from '../../src/calls/create-request.js';
import { AssistantOutput } from '../../src/pipeline/assistant-output.js';
import { BotState } from '../../src/pipeline/bot-state.js';
import { ConversationContext } from '../../src/pipeline/context.js';
import { completeness, hasWords, normalizeWords, silenceWaitMs, type TurnSettings } from '../../src/pipeline/end-of-turn.js';
import type { Frame } from '../../src/pipeline/frames.js';
import { LlmProcessor } from '../../src/pipeline/llm-processor.js';
import { Pipeline } from '../../src/pipeline/processor.js';
import { SentenceProcessor } from '../../src/pipeline/sentence-processor.js';
import { SpeculationGate } from '../../src/pipeline/speculation-gate.js';
import { TtsProcessor } from '../../src/pipeline/tts-processor.js';
import { TurnTracker, turnStages, type TurnRecord } from '../../src/pipeline/turn-record.js';
import { UserTurnAggregator } from '../../src/pipeline/turns.js';
import type { LlmChunk } from '../../src/providers/types.js';
import { ManualSink, RecordingObserver, ScriptedLlm, ScriptedTts, sleep } from '../helpers/pipeline-fakes.js';
import { waitUntil } from '../helpers/wait.js';

const text = (...parts: string[]): LlmChunk[] => parts.map((t) => ({ type: 'text', text: t }));

const SETTINGS: TurnSettings = { falseInterruptionSecs: 0.15, minStopSecs: 0.03, maxStopSecs: 0.6, preemptive: true };

function build(llm: ScriptedLlm, turns: TurnSettings = SETTINGS, vadStopSecs = 0.01) {
  const context = new ConversationContext([{ role: 'system', content: 'be brief' }]);
  const bot = new BotState();
  const observer = new RecordingObserver();
  const completed: TurnRecord[] = [];
  const tracker = new TurnTracker({ turnCompleted: (r) => completed.push({ ...r }) });
  const gate = new SpeculationGate(observer);
  const tts = new ScriptedTts();
  const sink = new ManualSink();
  const call = new AbortController();
  const pipeline = new Pipeline(
    [
      new UserTurnAggregator(context, bot, gate, {
        audio: true,
        finalTimeoutMs: 1000,
        stopSecs: 0.25,
        vadStopSecs,
        turns,
        tracker,
        gate,
      }),
      new LlmProcessor(llm, context, null, bot, gate, call.signal, tracker),
      new SentenceProcessor(gate),
      new TtsProcessor(tts, gate, call.signal, tracker),
      new AssistantOutput(context, bot, gate, sink, null, tracker),
    ],
    () => undefined,
  );
  const feed = (...frames: Frame[]): void => {
    for (const f of frames) pipeline.feed(f);
  };
  return { context, bot, observer, tracker, completed, tts, sink, call, pipeline, feed };
}

async function playAll(sink: ManualSink): Promise<void> {
  for (let i = 0; i < 10_000 && sink.queuedFrames > 0; i++) sink.tick();
  sink.tick();
  await sleep(1);
}

const REPLY = text('One two three four.', ' Five six seven eight.', ' Nine ten.');
const REPLY_TEXT = 'One two three four. Five six seven eight. Nine ten.';

/** The bot greets; its whole reply is queued and 6 frames (0.12 s: "One two three") have played. */
async function botTalking(t: ReturnType<typeof build>): Promise<void> {
  t.feed({ type: 'llm_run', audio: true });
  await waitUntil('the reply queued', () => t.tts.sentences.length === 3 && t.sink.queuedFrames >= Math.ceil((REPLY_TEXT.length - 2) * 320 / 640));
  t.sink.tick(6);
  expect(t.bot.speaking).toBe(true);
}

describe('reversible barge-in', () => {
  it('a noise the VAD does not confirm pauses the bot and resumes it where it stopped', async () => {
    const llm = new ScriptedLlm([{ chunks: REPLY }]);
    const t = build(llm, { ...SETTINGS, falseInterruptionSecs: 1 });
    await botTalking(t);
    const queued = t.sink.queuedFrames;
    t.feed({ type: 'user_onset' });
    expect(t.sink.paused).toBe(true);
    t.sink.tick(10);
    expect(t.sink.botFramesWritten).toBe(6);
    expect(t.sink.queuedFrames).toBe(queued);
    t.feed({ type: 'user_onset_dropped' });
    // A dip inside a word: speech comes back at once, the bot stays paused.
    t.feed({ type: 'user_onset' });
    await sleep(150);
    expect(t.sink.paused).toBe(true);
    t.feed({ type: 'user_onset_dropped' });
    await waitUntil('the bot to resume', () => !t.sink.paused);
    expect(t.observer.interruptionKinds).toEqual(['false']);
    expect(t.tts.cancelled).toBe(0);
    await playAll(t.sink);
    expect(t.sink.botFramesWritten).toBe(6 + queued);
    expect(t.context.messages.at(-1)).toEqual({ role: 'assistant', content: REPLY_TEXT });
    expect(llm.aborted).toBe(0);
  });

  it('speech with no words within the window is a false interruption: nothing lost, the context exact', async () => {
    const llm = new ScriptedLlm([{ chunks: REPLY }]);
    const t = build(llm);
    await botTalking(t);
    const queued = t.sink.queuedFrames;
    t.feed({ type: 'user_onset' }, { type: 'user_started_speaking' });
    expect(t.sink.paused).toBe(true);
    t.sink.tick(5);
    // A cough: the VAD stops, the STT hears nothing (or only "uh-huh", which is not a word here).
    t.feed({ type: 'user_stopped_speaking' }, { type: 'transcription', text: 'uh-huh', final: false });
    await waitUntil('the bot to resume', () => !t.sink.paused);
    expect(t.observer.interruptionKinds).toEqual(['false']);
    expect(t.sink.queuedFrames).toBe(queued);
    expect(t.sink.cleared).toBe(0);
    t.feed({ type: 'transcription', text: 'Uh-huh.', final: true });
    await playAll(t.sink);
    expect(t.sink.botFramesWritten).toBe(6 + queued);
    // The backchannel did not take the turn: no user message, the whole reply in the context.
    expect(t.context.messages.slice(1)).toEqual([{ role: 'assistant', content: REPLY_TEXT }]);
    expect(llm.requests).toHaveLength(1);
    await waitUntil('the turn record', () => t.completed.some((r) => r.interruption === 'false'));
    const record = t.tracker.records().find((r) => r.interruption === 'false');
    expect(record?.bargeInAt).not.toBeNull();
    expect(record?.onsetAt).not.toBeNull();
  });

  it('words during the pause confirm it: the bot is cancelled and only what was heard stays', async () => {
    const llm = new ScriptedLlm([{ chunks: REPLY, delayMs: 5 }, { chunks: text('Yes?') }]);
    const t = build(llm);
    await botTalking(t);
    t.feed({ type: 'user_onset' }, { type: 'user_started_speaking' });
    // Paused frames are not "heard": the context must not count them.
    t.sink.tick(20);
    t.feed({ type: 'transcription', text: 'wait', final: false });
    expect(t.sink.paused).toBe(false);
    expect(t.sink.queuedFrames).toBe(0);
    expect(t.sink.cleared).toBe(1);
    expect(t.observer.interruptionKinds).toEqual(['confirmed']);
    expect(t.bot.generating).toBe(false);
    expect(t.context.messages.at(-1)).toEqual({ role: 'assistant', content: 'One two three' });
    t.feed({ type: 'transcription', text: 'Wait.', final: true }, { type: 'user_stopped_speaking' });
    await waitUntil('the reply to the caller', () => llm.requests.length === 2);
    expect(llm.requests[1]?.slice(-2)).toEqual([
      { role: 'assistant', content: 'One two three' },
      { role: 'user', content: 'Wait.' },
    ]);
    expect(t.tracker.records()[0]?.interruption).toBe('confirmed');
  });

  it('with false_interruption_secs 0 the VAD start cancels at once (classic)', async () => {
    const llm = new ScriptedLlm([{ chunks: REPLY }]);
    const t = build(llm, { ...SETTINGS, falseInterruptionSecs: 0 });
    await botTalking(t);
    t.feed({ type: 'user_onset' });
    expect(t.sink.paused).toBe(false);
    t.feed({ type: 'user_started_speaking' });
    expect(t.sink.queuedFrames).toBe(0);
    expect(t.observer.interruptions).toBe(1);
  });
});

describe('earlier replies', () => {
  it('a turn with a mid-sentence pause is not answered early; its preemptive reply is thrown away unheard', async () => {
    const llm = new ScriptedLlm([{ chunks: text('Sure, for how many?'), delayMs: 5 }]);
    const t = build(llm);
    t.feed({ type: 'user_onset' }, { type: 'user_started_speaking' });
    t.feed({ type: 'transcription', text: 'I would like to book', final: false }, { type: 'user_stopped_speaking' });
    // The pause: a preemptive run starts on the words so far, held.
    await waitUntil('a preemptive run', () => llm.requests.length === 1);
    expect(llm.requests[0]?.at(-1)).toEqual({ role: 'user', content: 'I would like to book' });
    t.feed({ type: 'transcription', text: 'I would like to book', final: true });
    await sleep(80);
    // "book" is neither complete nor trailing: the ordinary stop_secs (0.25 s) applies, so the turn is still open.
    t.sink.tick(20);
    expect(t.sink.botFramesWritten).toBe(0);
    expect(t.context.messages).toHaveLength(1);
    t.feed({ type: 'user_onset' }, { type: 'user_started_speaking' });
    t.feed({ type: 'transcription', text: 'a table for two.', final: true }, { type: 'user_stopped_speaking' });
    await waitUntil('the turn to end', () => t.context.messages.at(-1)?.role === 'user');
    expect(t.context.messages.at(-1)).toEqual({ role: 'user', content: 'I would like to book a table for two.' });
    await waitUntil('the reply audio', () => t.sink.queuedFrames > 0);
    await playAll(t.sink);
    expect(t.context.messages.at(-1)).toEqual({ role: 'assistant', content: 'Sure, for how many?' });
    // Nothing of the thrown-away reply was published, and no reply played before the turn ended.
    const bot = t.observer.events.filter(([type]) => type.startsWith('message_bot'));
    expect(bot).toEqual([
      ['message_bot_transcription', 'Sure, for how many?'],
      ['message_bot_llm', 'Sure, for how many?'],
    ]);
    expect(t.observer.interruptionKinds).toEqual([]);
    const record = t.tracker.records()[0];
    expect(record?.text).toBe('I would like to book a table for two.');
    expect(record?.preemptiveRuns).toBeGreaterThanOrEqual(2);
  });

  it('a complete question ends the turn after the short silence and the preemptive reply is used', async () => {
    const llm = new ScriptedLlm([{ chunks: text('It is noon.') }]);
    const t = build(llm);
    t.feed({ type: 'user_onset' }, { type: 'user_started_speaking' });
    t.feed({ type: 'transcription', text: 'what time is it', final: false }, { type: 'user_stopped_speaking' });
    await waitUntil('a preemptive run', () => llm.requests.length === 1);
    t.feed({ type: 'transcription', text: 'What time is it?', final: true });
    await waitUntil('the held reply to be released', () => t.sink.queuedFrames > 0);
    expect(llm.requests).toHaveLength(1);
    expect(t.context.messages.at(-1)).toEqual({ role: 'user', content: 'What time is it?' });
    await playAll(t.sink);
    expect(t.context.messages.at(-1)).toEqual({ role: 'assistant', content: 'It is noon.' });
    await waitUntil('the record', () => t.completed.length === 1);
    const r = t.completed[0];
    expect(r?.ending).toBe('complete');
    expect(r?.preemptiveUsed).toBe(true);
    for (const step of ['onsetAt', 'vadStartAt', 'vadStopAt', 'firstInterimAt', 'finalAt', 'endAt', 'llmRequestAt', 'llmFirstTokenAt', 'ttsRequestAt', 'ttsFirstAudioAt', 'firstBotFrameAt'] as const) {
      expect(r?.[step], step).not.toBeNull();
    }
    expect(r?.llmRequestAt ?? 0).toBeLessThanOrEqual(r?.endAt ?? 0);
    expect(r?.firstBotFrameAt ?? 0).toBeGreaterThanOrEqual(r?.endAt ?? Infinity);
    // The histogram stages of this turn: each one present, none negative.
    const stages = new Map(turnStages(r as TurnRecord));
    for (const stage of ['onset_to_vad_start', 'speech_end_to_final', 'speech_end_to_turn_end', 'llm_first_token', 'tts_first_audio', 'voice_to_voice', 'pipeline_own'] as const) {
      expect(stages.get(stage), stage).toBeGreaterThanOrEqual(0);
    }
    expect(stages.has('barge_in')).toBe(false);
  });

  it("an STT's eager end-of-turn starts the reply early; turn-resumed throws it away", async () => {
    const llm = new ScriptedLlm([{ chunks: text('Noted.'), delayMs: 5 }]);
    const t = build(llm);
    t.feed({ type: 'user_started_speaking' }, { type: 'transcription', text: 'call me back', final: false });
    t.feed({ type: 'turn_hint', hint: 'eager_end' });
    await waitUntil('the preemptive run', () => llm.requests.length === 1);
    t.feed({ type: 'turn_hint', hint: 'resumed' });
    t.feed({ type: 'transcription', text: 'Call me back tomorrow.', final: true }, { type: 'user_stopped_speaking' });
    await waitUntil('the turn to end', () => t.context.messages.at(-1)?.role === 'user');
    expect(t.context.messages.at(-1)?.content).toBe('Call me back tomorrow.');
    await waitUntil('the reply', () => t.sink.queuedFrames > 0);
    // The thrown-away run never reached the caller: one reply only.
    expect(t.observer.events.filter(([type]) => type === 'message_bot_transcription')).toEqual([['message_bot_transcription', 'Noted.']]);
    expect(llm.requests.at(-1)?.at(-1)).toEqual({ role: 'user', content: 'Call me back tomorrow.' });
  });

  it('fixed endpointing: the reply is prepared at the VAD pause and plays only at its stop', async () => {
    const llm = new ScriptedLlm([{ chunks: text('It is noon.') }]);
    // min = max = stop_secs, the VAD's own stop ends the turn (classic timing) and reports its early pause.
    const t = build(llm, { falseInterruptionSecs: 0, minStopSecs: 0.25, maxStopSecs: 0.25, preemptive: true }, 0.25);
    t.feed({ type: 'user_onset' }, { type: 'user_started_speaking' }, { type: 'transcription', text: 'What time is it?', final: true });
    t.feed({ type: 'user_paused' });
    await waitUntil('the preemptive run at the pause', () => llm.requests.length === 1);
    await waitUntil('its audio made', () => t.tts.sentences.length === 1);
    t.sink.tick(20);
    // Held: the caller has not finished by the VAD's rule yet, nothing plays and the context is untouched.
    expect(t.sink.botFramesWritten).toBe(0);
    expect(t.sink.queuedFrames).toBe(0);
    expect(t.context.messages.map((m) => m.role)).toEqual(['system']);
    t.feed({ type: 'user_stopped_speaking' });
    expect(t.sink.queuedFrames).toBeGreaterThan(0);
    expect(llm.requests).toHaveLength(1);
    expect(t.context.messages.at(-1)).toEqual({ role: 'user', content: 'What time is it?' });
    await playAll(t.sink);
    await waitUntil('the record', () => t.completed.length === 1);
    expect(t.completed[0]?.preemptiveUsed).toBe(true);
  });

  it('fixed endpointing: speech after the pause voids the prepared reply; the new words get theirs', async () => {
    const llm = new ScriptedLlm([{ chunks: text('It is noon.') }, { chunks: text('Six in Paris.') }]);
    const t = build(llm, { falseInterruptionSecs: 0, minStopSecs: 0.25, maxStopSecs: 0.25, preemptive: true }, 0.25);
    t.feed({ type: 'user_started_speaking' }, { type: 'transcription', text: 'What time is it', final: true }, { type: 'user_paused' });
    await waitUntil('the first preemptive run', () => llm.requests.length === 1);
    t.feed({ type: 'user_resumed' }, { type: 'transcription', text: 'in Paris?', final: true });
    t.sink.tick(20);
    expect(llm.requests).toHaveLength(1);
    t.feed({ type: 'user_paused' });
    await waitUntil('a run on the whole question', () => llm.requests.length === 2);
    expect(llm.requests[1]?.at(-1)).toEqual({ role: 'user', content: 'What time is it in Paris?' });
    t.feed({ type: 'user_stopped_speaking' });
    await waitUntil('the reply queued', () => t.sink.queuedFrames > 0);
    await playAll(t.sink);
    // Only the second reply reached the caller.
    expect(t.observer.events.filter(([type]) => type === 'message_bot_transcription')).toEqual([['message_bot_transcription', 'Six in Paris.']]);
    expect(t.context.messages.slice(1)).toEqual([
      { role: 'user', content: 'What time is it in Paris?' },
      { role: 'assistant', content: 'Six in Paris.' },
    ]);
  });

  it('words that trail off wait for the long silence', async () => {
    const llm = new ScriptedLlm([{ chunks: text('Go on.') }]);
    const t = build(llm, { ...SETTINGS, preemptive: false });
    t.feed({ type: 'user_started_speaking' }, { type: 'transcription', text: 'My number is, um', final: true }, { type: 'user_stopped_speaking' });
    await sleep(350);
    expect(llm.requests).toHaveLength(0);
    await waitUntil('the long silence to end the turn', () => llm.requests.length === 1);
  });
});

describe('per-call settings', () => {
  it('vad_config takes the turn-taking keys, and refuses bad ones clearly', () => {
    const body = (vad: Record<string, unknown>) => ({ reference_type: 'call', vad_config: vad });
    const r = parseCreateRequest(body({ false_interruption_secs: 0.5, min_stop_secs: 0.2, max_stop_secs: 2, preemptive_generation: false }), 'local.echo');
    expect(r.vad_config).toMatchObject({ stop_secs: 0.8, false_interruption_secs: 0.5, min_stop_secs: 0.2, max_stop_secs: 2, preemptive_generation: false });
    expect(parseCreateRequest(body({}), 'local.echo').vad_config.false_interruption_secs).toBeUndefined();
    expect(() => parseCreateRequest(body({ min_stop_secs: -1 }), 'local.echo')).toThrow(/vad_config.min_stop_secs must be a number from 0 to 10/);
    expect(() => parseCreateRequest(body({ preemptive_generation: 'yes' }), 'local.echo')).toThrow(/preemptive_generation must be true or false/);
  });
});

describe('end-of-turn words', () => {
  it('tells complete, neutral and trailing words apart', () => {
    expect(completeness('What time is it?')).toBe('complete');
    expect(completeness('Book a table for two.')).toBe('complete');
    expect(completeness('I want to.')).toBe('trailing');
    expect(completeness('my number is, um')).toBe('trailing');
    expect(completeness('and then...')).toBe('trailing');
    expect(completeness('I would like to book')).toBe('neutral');
    expect(hasWords('Uh-huh.')).toBe(false);
    expect(hasWords('mm hmm')).toBe(false);
    expect(hasWords('wait')).toBe(true);
    expect(normalizeWords('What time, is it?')).toBe('what time is it');
  });

  it('counts silence in audio the VAD has analysed, so a VAD that fell behind holds the end of the turn', () => {
    const base = { now: 1000, wallDue: 900, neededSample: 16_000, guard: false };
    // By the wall clock the silence is long enough; the VAD has heard only up to 0.5 s of it: wait.
    expect(silenceWaitMs({ ...base, analysed: 8_000 })).toBeGreaterThan(400);
    expect(silenceWaitMs({ ...base, analysed: 16_000 })).toBe(0);
    // With preemptive replies, 3 more windows must have been heard without an onset.
    expect(silenceWaitMs({ ...base, analysed: 16_000, guard: true })).toBeGreaterThan(0);
    // A VAD that stalled does not hang the turn.
    expect(silenceWaitMs({ ...base, now: 2000, analysed: 0 })).toBe(0);
    // Without the VAD's progress: the wall clock.
    expect(silenceWaitMs({ ...base, now: 800, neededSample: null, analysed: null })).toBe(100);
  });
});
