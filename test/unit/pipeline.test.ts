// The conversation pipeline with in-process providers: frames in, behaviour out (context, events, audio on the
// sink, cancellation). The same processors run on real calls; network providers are tested against fakes.

import { describe, expect, it } from 'vitest';
import { AssistantOutput } from '../../src/pipeline/assistant-output.js';
import { BotState } from '../../src/pipeline/bot-state.js';
import { ConversationContext } from '../../src/pipeline/context.js';
import type { Frame } from '../../src/pipeline/frames.js';
import { LlmProcessor, type ToolExecutor } from '../../src/pipeline/llm-processor.js';
import { FrameProcessor, Pipeline } from '../../src/pipeline/processor.js';
import { SttProcessor } from '../../src/pipeline/input-processors.js';
import { SentenceProcessor } from '../../src/pipeline/sentence-processor.js';
import { TtsProcessor } from '../../src/pipeline/tts-processor.js';
import { UserTurnAggregator } from '../../src/pipeline/turns.js';
import type { LlmChunk } from '../../src/providers/types.js';
import { ManualSink, RecordingObserver, ScriptedLlm, ScriptedTts, sleep } from '../helpers/pipeline-fakes.js';
import { waitUntil } from '../helpers/wait.js';

const text = (...parts: string[]): LlmChunk[] => parts.map((t) => ({ type: 'text', text: t }));

function build(opts: { llm: ScriptedLlm; audio?: boolean; tools?: ToolExecutor; finalTimeoutMs?: number }) {
  const audio = opts.audio ?? true;
  const context = new ConversationContext([{ role: 'system', content: 'be brief' }]);
  const bot = new BotState();
  const observer = new RecordingObserver();
  const tts = new ScriptedTts();
  const sink = new ManualSink();
  const call = new AbortController();
  const upstream: Frame[] = [];
  const pipeline = new Pipeline(
    [
      new UserTurnAggregator(context, bot, observer, { audio, finalTimeoutMs: opts.finalTimeoutMs ?? 300, dtmfTimeoutMs: 200 }),
      new LlmProcessor(opts.llm, context, opts.tools ?? null, bot, observer, call.signal),
      new SentenceProcessor(observer),
      new TtsProcessor(tts, observer, call.signal),
      new AssistantOutput(context, bot, observer, audio ? sink : null, null),
    ],
    (frame, dir) => {
      if (dir === 'up') upstream.push(frame);
    },
  );
  return { context, bot, observer, tts, sink, call, upstream, pipeline };
}

/** Plays the sink until it is empty (the clock would do this at 20 ms per frame). */
async function playAll(sink: ManualSink): Promise<void> {
  for (let i = 0; i < 10_000 && sink.queuedFrames > 0; i++) sink.tick();
  sink.tick();
  await sleep(1);
}

describe('the pipeline', () => {
  it('speaks first: sentences go to the TTS as they complete, the reply enters the context once played', async () => {
    const llm = new ScriptedLlm([{ chunks: text('Hello', ' there.', ' How can', ' I help?') }]);
    const t = build({ llm });
    t.pipeline.feed({ type: 'llm_run', audio: true });
    await waitUntil('TTS audio', () => t.tts.sentences.length === 2 && t.sink.queuedFrames > 0);
    expect(t.tts.sentences).toEqual(['Hello there.', 'How can I help?']);
    await waitUntil('all audio', () => t.sink.queuedFrames >= Math.ceil(('Hello there.How can I help?'.length * 320) / 640));
    expect(t.context.messages.at(-1)?.role).toBe('system');
    expect(t.bot.generating).toBe(true);
    await playAll(t.sink);
    expect(t.context.messages.at(-1)).toEqual({ role: 'assistant', content: 'Hello there. How can I help?' });
    expect(t.bot.generating).toBe(false);
    expect(t.observer.events).toEqual([
      ['message_bot_transcription', 'Hello there.'],
      ['message_bot_transcription', 'How can I help?'],
      ['message_bot_llm', 'Hello there. How can I help?'],
    ]);
  });

  it('runs the LLM when the user turn ends with its final transcript', async () => {
    const llm = new ScriptedLlm([{ chunks: text('Sure.') }]);
    const t = build({ llm, audio: false });
    t.pipeline.feed({ type: 'user_started_speaking' });
    t.pipeline.feed({ type: 'transcription', text: 'I need', final: false });
    t.pipeline.feed({ type: 'transcription', text: 'I need help', final: true });
    t.pipeline.feed({ type: 'user_stopped_speaking' });
    await waitUntil('LLM run', () => llm.requests.length === 1);
    expect(llm.requests[0]?.at(-1)).toEqual({ role: 'user', content: 'I need help' });
    await waitUntil('reply', () => t.context.messages.at(-1)?.role === 'assistant');
    expect(t.observer.events).toEqual([
      ['message_user_transcription', 'I need help'],
      ['message_user_llm', 'I need help'],
      ['message_bot_llm', 'Sure.'],
    ]);
  });

  it('waits for a final that comes after the VAD stop, and falls back to the interim after the timeout', async () => {
    const llm = new ScriptedLlm([{ chunks: text('Ok.') }]);
    const t = build({ llm, audio: false, finalTimeoutMs: 150 });
    t.pipeline.feed({ type: 'user_started_speaking' });
    t.pipeline.feed({ type: 'transcription', text: 'first', final: false });
    t.pipeline.feed({ type: 'user_stopped_speaking' });
    await sleep(50);
    expect(llm.requests).toHaveLength(0);
    t.pipeline.feed({ type: 'transcription', text: 'first words', final: true });
    await waitUntil('run after the final', () => llm.requests.length === 1);
    expect(llm.requests[0]?.at(-1)?.content).toBe('first words');

    await waitUntil('done', () => !t.bot.generating);
    t.pipeline.feed({ type: 'user_started_speaking' });
    t.pipeline.feed({ type: 'transcription', text: 'only interim', final: false });
    t.pipeline.feed({ type: 'user_stopped_speaking' });
    await sleep(60);
    expect(llm.requests).toHaveLength(1);
    await waitUntil('run after the timeout', () => llm.requests.length === 2);
    expect(llm.requests[1]?.at(-1)?.content).toBe('only interim');

    await waitUntil('done', () => !t.bot.generating);
    t.pipeline.feed({ type: 'user_started_speaking' });
    t.pipeline.feed({ type: 'user_stopped_speaking' });
    await sleep(250);
    expect(llm.requests).toHaveLength(2);
  });

  it('barge-in: cancels the LLM and TTS, empties the queue, keeps only what was spoken', async () => {
    const long = text('One two three four.', ' Five six seven eight.', ' Nine ten eleven twelve.', ' And more words here.', ' The end.');
    const llm = new ScriptedLlm([{ chunks: long, delayMs: 40 }, { chunks: text('Yes?') }]);
    const t = build({ llm });
    t.pipeline.feed({ type: 'llm_run', audio: true });
    await waitUntil('first audio', () => t.sink.queuedFrames > 0);
    // 'One two three four.' is 19 chars = 0.19 s of audio; play 0.12 s of it: "One two three" started.
    t.sink.tick(6);
    expect(t.bot.speaking).toBe(true);
    t.pipeline.feed({ type: 'user_started_speaking' });
    expect(t.sink.queuedFrames).toBe(0);
    expect(t.sink.cleared).toBe(1);
    expect(t.observer.interruptions).toBe(1);
    expect(t.tts.cancelled).toBeGreaterThanOrEqual(1);
    const spoken = t.context.messages.at(-1);
    expect(spoken?.role).toBe('assistant');
    expect(spoken?.content).toBe('One two three');
    expect(t.observer.events.at(-1)).toEqual(['message_bot_llm', 'One two three']);
    await sleep(120);
    expect(llm.aborted).toBe(1);
    expect(t.sink.queuedFrames).toBe(0);
    // The user's turn then runs the LLM with the partial reply in the context.
    t.pipeline.feed({ type: 'transcription', text: 'wait', final: true });
    t.pipeline.feed({ type: 'user_stopped_speaking' });
    await waitUntil('second run', () => llm.requests.length === 2);
    expect(llm.requests[1]?.slice(-2)).toEqual([
      { role: 'assistant', content: 'One two three' },
      { role: 'user', content: 'wait' },
    ]);
  });

  it('a barge-in before any audio played keeps nothing of the reply', async () => {
    const llm = new ScriptedLlm([{ chunks: text('Long', ' answer', ' coming.'), delayMs: 30 }]);
    const t = build({ llm });
    t.pipeline.feed({ type: 'llm_run', audio: true });
    await sleep(40);
    t.pipeline.feed({ type: 'user_started_speaking' });
    expect(t.context.messages.at(-1)?.role).toBe('system');
    expect(t.bot.generating).toBe(false);
    await sleep(100);
    expect(t.tts.sentences).toEqual([]);
  });

  it('executes tool calls, keeps them in the context and runs again when asked', async () => {
    const executed: string[] = [];
    const tools: ToolExecutor = {
      tools: [{ name: 'get_variables', description: 'x', parameters: { type: 'object', properties: {} } }],
      execute: (call) => {
        executed.push(`${call.name} ${call.arguments}`);
        return Promise.resolve({ result: '{"variables":{"a":"1"}}', runLlm: true, endCall: false });
      },
    };
    const llm = new ScriptedLlm([
      { chunks: [{ type: 'text', text: 'Checking.' }, { type: 'tool_calls', calls: [{ id: 'c1', name: 'get_variables', arguments: '{"run_llm":true}' }] }] },
      { chunks: text('A is 1.') },
    ]);
    const t = build({ llm, audio: false, tools });
    t.pipeline.feed({ type: 'user_text', text: 'what is a?', runImmediately: true, audioResponse: false });
    await waitUntil('second answer', () => t.context.messages.at(-1)?.content === 'A is 1.');
    expect(executed).toEqual(['get_variables {"run_llm":true}']);
    expect(llm.requests[1]?.slice(-2)).toEqual([
      { role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_variables', arguments: '{"run_llm":true}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: '{"variables":{"a":"1"}}' },
    ]);
  });

  it('stop_service ends the call after the reply has been spoken', async () => {
    const tools: ToolExecutor = {
      tools: [],
      execute: () => Promise.resolve({ result: '{"status":"ok"}', runLlm: false, endCall: true }),
    };
    const llm = new ScriptedLlm([{ chunks: [{ type: 'text', text: 'Goodbye!' }, { type: 'tool_calls', calls: [{ id: 'c', name: 'stop_service', arguments: '{}' }] }] }]);
    const t = build({ llm, tools });
    t.pipeline.feed({ type: 'llm_run', audio: true });
    await waitUntil('audio', () => t.sink.queuedFrames > 0);
    await sleep(20);
    expect(t.upstream).toEqual([]);
    await playAll(t.sink);
    expect(t.upstream).toEqual([{ type: 'end_call', reason: 'stop' }]);
  });

  it('collects DTMF until # and runs the LLM with it', async () => {
    const llm = new ScriptedLlm([{ chunks: text('Got it.') }]);
    const t = build({ llm, audio: false });
    for (const d of ['1', '2', '#']) t.pipeline.feed({ type: 'dtmf', digit: d });
    await waitUntil('run', () => llm.requests.length === 1);
    expect(llm.requests[0]?.at(-1)).toEqual({ role: 'user', content: 'DTMF: 12' });
    t.pipeline.feed({ type: 'dtmf', digit: '9' });
    await waitUntil('timeout flush', () => llm.requests.length === 2);
    expect(llm.requests[1]?.at(-1)?.content).toBe('DTMF: 9');
  });

  it('a message without run_immediately waits in the context for the next turn', async () => {
    const llm = new ScriptedLlm([{ chunks: text('Fine.') }]);
    const t = build({ llm, audio: false });
    t.pipeline.feed({ type: 'user_text', text: 'note: VIP caller', runImmediately: false, audioResponse: false });
    await sleep(20);
    expect(llm.requests).toHaveLength(0);
    t.pipeline.feed({ type: 'transcription', text: 'hello', final: true });
    await waitUntil('run', () => llm.requests.length === 1);
    expect(llm.requests[0]?.at(-1)).toEqual({ role: 'user', content: 'note: VIP caller\nhello' });
  });

  it('two failed LLM runs in a row end the call with llm_error; one does not', async () => {
    const llm = new ScriptedLlm([{ chunks: text('Par'), fail: new Error('HTTP 500') }]);
    const t = build({ llm, audio: false });
    t.pipeline.feed({ type: 'llm_run', audio: false });
    await waitUntil('first error', () => t.observer.errors.length === 1);
    expect(t.upstream).toEqual([]);
    expect(t.bot.generating).toBe(false);
    t.pipeline.feed({ type: 'llm_run', audio: false });
    await waitUntil('end_call', () => t.upstream.length === 1);
    expect(t.upstream[0]).toEqual({ type: 'end_call', reason: 'llm_error' });
    expect(t.observer.errors).toEqual([
      ['llm', 'scripted'],
      ['llm', 'scripted'],
    ]);
    // The broken-off fragment was neither published nor kept.
    expect(t.observer.events.filter(([type]) => type === 'message_bot_llm')).toEqual([]);
    expect(t.context.messages.some((m) => m.role === 'assistant')).toBe(false);
  });

  it('a reply the LLM breaks off keeps its complete sentences and drops the fragment', async () => {
    const llm = new ScriptedLlm([{ chunks: text('Hello there.', ' I was say'), fail: new Error('stream reset') }]);
    const t = build({ llm });
    t.pipeline.feed({ type: 'llm_run', audio: true });
    await waitUntil('the failure', () => t.observer.errors.length === 1);
    await waitUntil('audio of the first sentence', () => t.sink.queuedFrames > 0);
    await sleep(20);
    await playAll(t.sink);
    expect(t.tts.sentences).toEqual(['Hello there.']);
    expect(t.context.messages.at(-1)).toEqual({ role: 'assistant', content: 'Hello there.' });
    expect(t.observer.events).toEqual([
      ['message_bot_transcription', 'Hello there.'],
      ['message_bot_llm', 'Hello there.'],
    ]);
  });

  it('two failed TTS turns in a row end the call with tts_error', async () => {
    const llm = new ScriptedLlm([{ chunks: text('Hi there.') }]);
    const t = build({ llm });
    t.tts.failNext = 2;
    t.pipeline.feed({ type: 'llm_run', audio: true });
    await waitUntil('first failure', () => t.observer.errors.length === 1 && !t.bot.generating);
    expect(t.upstream).toEqual([]);
    t.pipeline.feed({ type: 'llm_run', audio: true });
    await waitUntil('end_call', () => t.upstream.length === 1);
    expect(t.upstream[0]).toEqual({ type: 'end_call', reason: 'tts_error' });
  });

  it('cancelling the call signal stops everything without errors', async () => {
    const llm = new ScriptedLlm([{ chunks: text('a ', 'b ', 'c.'), delayMs: 30 }]);
    const t = build({ llm });
    t.pipeline.feed({ type: 'llm_run', audio: true });
    await sleep(20);
    t.call.abort();
    await t.pipeline.close();
    await sleep(120);
    expect(t.observer.errors).toEqual([]);
    expect(t.upstream).toEqual([]);
    expect(llm.aborted).toBe(1);
  });
});

describe('closing mid-reply', () => {
  it('publishes the final bot text with what was heard', async () => {
    const llm = new ScriptedLlm([{ chunks: text('One two three four.', ' Five six seven.'), delayMs: 20 }]);
    const t = build({ llm });
    t.pipeline.feed({ type: 'llm_run', audio: true });
    await waitUntil('audio', () => t.sink.queuedFrames > 0);
    t.sink.tick(6);
    t.call.abort();
    await t.pipeline.close();
    expect(t.observer.events.at(-1)).toEqual(['message_bot_llm', 'One two three']);
    expect(t.observer.events.filter(([type]) => type === 'message_bot_llm')).toHaveLength(1);
  });
});

describe('Pipeline assembly', () => {
  it('a provider failure reported while the call is being built still ends the call once it is linked', () => {
    // The STT failed after it connected and before the rest of the pipeline was up (e.g. while the TTS opened).
    const stt = new SttProcessor();
    stt.failed();
    class Passthrough extends FrameProcessor {
      process(frame: Frame, direction: 'down' | 'up'): void {
        this.push(frame, direction);
      }
    }
    const exits: Frame[] = [];
    const pipeline = new Pipeline([new Passthrough(), stt, new Passthrough()], (frame, direction) => {
      if (direction === 'up') exits.push(frame);
    });
    expect(exits).toEqual([{ type: 'end_call', reason: 'stt_error' }]);
    // Delivered once only.
    pipeline.feed({ type: 'user_text', text: 'hi', runImmediately: false, audioResponse: false });
    expect(exits).toHaveLength(1);
  });
});

describe('SttProcessor chunking', () => {
  /** A stream that records each write as a copy (what went out as one STT message). */
  const recordingStream = (): { writes: Int16Array[]; closed: boolean; write(pcm: Int16Array): void; close(): Promise<void> } => ({
    writes: [],
    closed: false,
    write(pcm: Int16Array) {
      this.writes.push(Int16Array.from(pcm));
    },
    close() {
      this.closed = true;
      return Promise.resolve();
    },
  });
  const frame = (start: number, n = 320): Int16Array => Int16Array.from({ length: n }, (_, i) => (start + i) % 30000);

  it('sends caller audio in chunks, at once at a VAD event and on close, losing and reordering nothing', async () => {
    const stt = new SttProcessor(1600); // 100 ms at 16 kHz
    const stream = recordingStream();
    stt.attach(stream);
    const seen: Frame[] = [];
    class Tail extends FrameProcessor {
      process(f: Frame): void {
        seen.push(f);
      }
    }
    new Pipeline([stt, new Tail()], () => undefined);
    let at = 0;
    for (let i = 0; i < 7; i++, at += 320) stt.process({ type: 'audio_in', pcm: frame(at) }, 'down');
    // 7 frames = 2240 samples: one full chunk so far, 640 samples held.
    expect(stream.writes.map((w) => w.length)).toEqual([1600]);
    stt.process({ type: 'user_paused' }, 'down');
    expect(stream.writes.map((w) => w.length)).toEqual([1600, 640]);
    expect(seen).toEqual([{ type: 'user_paused' }]); // the event goes on, after the audio went out
    for (let i = 0; i < 3; i++, at += 320) stt.process({ type: 'audio_in', pcm: frame(at) }, 'down');
    expect(stream.writes).toHaveLength(2);
    await stt.close();
    expect(stream.closed).toBe(true);
    expect(stream.writes.map((w) => w.length)).toEqual([1600, 640, 960]);
    const all = new Int16Array(at);
    let pos = 0;
    for (const w of stream.writes) {
      all.set(w, pos);
      pos += w.length;
    }
    expect(all).toEqual(frame(0, at));
  });

  it('chunk of one frame or less: every frame goes out as it comes', () => {
    const stt = new SttProcessor(0);
    const stream = recordingStream();
    stt.attach(stream);
    stt.process({ type: 'audio_in', pcm: frame(0) }, 'down');
    stt.process({ type: 'audio_in', pcm: frame(320) }, 'down');
    expect(stream.writes.map((w) => w.length)).toEqual([320, 320]);
  });
});
