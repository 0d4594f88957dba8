// Calls through the official provider SDKs (Deepgram, OpenAI, Cartesia) against local servers that speak their
// real protocols, over a real Audiosocket connection with real recorded speech: greeting, a user turn, barge-in,
// tools through a Go-style ai-manager on the real RabbitMQ, text-only sessions, and provider failures.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { CallListener } from '../../src/calls/call-observer.js';
import { Metrics } from '../../src/metrics.js';
import { ProviderRegistry } from '../../src/providers/registry.js';
import { FakeCartesiaServer } from '../fakes/cartesia-server.js';
import { FakeDeepgramServer } from '../fakes/deepgram-server.js';
import { FakeElevenLabsServer } from '../fakes/elevenlabs-server.js';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../fakes/openai-server.js';
import { TestCaller, loadPrompt } from '../helpers/caller.js';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, testConfig, type TestApp, type TestServices } from '../helpers/test-app.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';
const AI_MANAGER = 'bin-manager.ai-manager.request';
const OPENAI_KEY = 'sk-test-openai-0123456789';
const DEEPGRAM_KEY = 'dg-test-key-0123456789';
const CARTESIA_KEY = 'sk_car_test_0123456789';
const ELEVENLABS_KEY = 'xi_test_key_0123456789';

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;
let events: EventSubscription;
let openai: FakeOpenAiServer;
let deepgram: FakeDeepgramServer;
let cartesia: FakeCartesiaServer;
let elevenlabs: FakeElevenLabsServer;
const aicalls = new Map<string, { referenceType: string; answerTools: boolean }>();
const toolRequests: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  [openai, deepgram, cartesia, elevenlabs, services] = await Promise.all([
    startFakeOpenAiServer(),
    FakeDeepgramServer.start({ apiKey: DEEPGRAM_KEY }),
    FakeCartesiaServer.start({ apiKey: CARTESIA_KEY, realtime: true, chunkBytes: 1280 }),
    FakeElevenLabsServer.start({ apiKey: ELEVENLABS_KEY, chunkIntervalMs: 10 }),
    createTestServices(),
  ]);
  const env = {
    OPENAI_API_KEY: OPENAI_KEY,
    OPENAI_BASE_URL: openai.baseUrl,
    DEEPGRAM_API_KEY: DEEPGRAM_KEY,
    DEEPGRAM_BASE_URL: deepgram.url,
    CARTESIA_API_KEY: CARTESIA_KEY,
    CARTESIA_BASE_URL: cartesia.baseUrl,
    ELEVENLABS_API_KEY: ELEVENLABS_KEY,
    ELEVENLABS_BASE_URL: elevenlabs.baseUrl,
  };
  const providers = new ProviderRegistry(testConfig(services, env), { cartesiaCreateConnection: cartesia.createConnection });
  t = await startTestApp(services, env, { providers, metrics: new Metrics({ defaultMetrics: false }) });
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  events = await rpc.subscribeEvents();
  await rpc.respondOn(AI_MANAGER, (req) => {
    const uri = String(req.uri);
    const reply = (data: unknown): Buffer => Buffer.from(JSON.stringify({ status_code: 200, data_type: 'application/json', data }));
    const m = /^\/v1\/aicalls\/([0-9a-f-]{36})(\/tool_execute)?$/.exec(uri);
    if (m !== null) {
      const aicall = aicalls.get(m[1] ?? '');
      if (aicall === undefined) return Buffer.from('{"status_code":404,"data_type":""}');
      if (m[2] === undefined) return reply({ id: m[1], ai_id: 'ai-1', reference_type: aicall.referenceType, reference_id: randomUUID() });
      toolRequests.push(req);
      return aicall.answerTools ? reply({ status: 'ok', call_id: 'c-42' }) : undefined;
    }
    if (uri === '/v1/ais/ai-1') return reply({ id: 'ai-1', engine_key: 'sk-engine-key-from-ai-manager' });
    return Buffer.from('{"status_code":404,"data_type":""}');
  });
});

afterAll(async () => {
  await events?.close();
  await rpc?.close();
  await t?.stop();
  await Promise.allSettled([openai?.close(), deepgram?.close(), cartesia?.close(), elevenlabs?.close()]);
  await services?.dropAll();
});

type Ev = { type: string; data: { pipecatcall_id?: string; id?: string; text?: string } };
const messagesOf = (id: string): Array<[string, string]> =>
  (events.events as Ev[]).filter((e) => e.data.pipecatcall_id === id).map((e) => [e.type, e.data.text ?? '']);
const callEvents = (id: string): string[] => (events.events as Ev[]).filter((e) => e.data.id === id).map((e) => e.type);

async function create(data: Record<string, unknown>): Promise<{ status_code: number; data: Record<string, unknown> }> {
  const reply = await rpc.request(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data });
  return reply.json as { status_code: number; data: Record<string, unknown> };
}

const cloudCall = (id: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  id,
  reference_type: 'call',
  llm_type: 'openai.gpt-4o-mini',
  llm_messages: [{ role: 'system', content: 'Be brief.' }],
  stt_type: 'deepgram',
  stt_language: 'en-US',
  tts_type: 'cartesia',
  tts_voice_id: 'voice-123',
  ...extra,
});

async function waitGreetingDone(caller: TestCaller): Promise<void> {
  await caller.until(() => caller.voiced().length > 3, 'the greeting');
  await caller.until(() => {
    const v = caller.voiced();
    const last = v[v.length - 1];
    return last !== undefined && performance.now() - last.at > 300;
  }, 'the end of the greeting');
}

describe('a call through Deepgram, OpenAI and Cartesia', () => {
  it.each([
    [8000, 0x10, 320],
    [16000, 0x12, 640],
  ] as const)('at %i Hz: greeting, a user turn at 16 kHz to the STT, the answer paced in the caller\'s kind', async (rate, kind, bytes) => {
    const id = randomUUID();
    const requestsBefore = openai.requests.length;
    openai.enqueue({ text: ['Hello!', ' How can', ' I help?'] }, { text: ['You said', ' hello world.', ' Anything else?'] });
    expect((await create(cloudCall(id))).status_code).toBe(200);
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, rate);
    try {
      await waitGreetingDone(caller);
      const conn = deepgram.last;
      expect(conn.authorization).toBe(`Token ${DEEPGRAM_KEY}`);
      expect(conn.query).toMatchObject({
        model: 'nova-2',
        encoding: 'linear16',
        sample_rate: '16000',
        channels: '1',
        interim_results: 'true',
        punctuate: 'true',
        smart_format: 'true',
        language: 'en-US',
      });
      const sentBefore = caller.frames.length;
      const bytesBefore = conn.audioBytes;
      const prompt = await loadPrompt('hello-world', rate);
      const speaking = caller.say(prompt);
      await new Promise((r) => setTimeout(r, 1500));
      deepgram.sendResults('hello', { isFinal: false }, conn);
      await speaking;
      deepgram.sendResults('hello world', { isFinal: true, speechFinal: true }, conn);
      const speechEnd = performance.now();
      await openai.waitForRequests(requestsBefore + 2);
      // The STT got 16 kHz audio: twice the caller's bytes at 8 kHz, the same at 16 kHz.
      const framesSent = caller.frames.length - sentBefore;
      const ratio = (conn.audioBytes - bytesBefore) / (framesSent * bytes);
      expect(ratio).toBeGreaterThan(rate === 8000 ? 1.8 : 0.9);
      expect(ratio).toBeLessThan(rate === 8000 ? 2.2 : 1.1);

      const body = openai.requests[requestsBefore + 1]?.body as { model: string; stream: boolean; messages: unknown[]; tools: Array<{ function: { name: string } }> };
      expect(body.model).toBe('gpt-4o-mini');
      expect(body.stream).toBe(true);
      expect(body.messages).toEqual([
        { role: 'system', content: 'Be brief.' },
        { role: 'assistant', content: 'Hello! How can I help?' },
        { role: 'user', content: 'hello world' },
      ]);
      expect(body.tools.map((x) => x.function.name)).toEqual(['stop_service']);
      expect(openai.requests[requestsBefore]?.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);

      await caller.until(() => caller.voiced(speechEnd).length > 12, 'the spoken answer');
      await waitUntil('the second message_bot_llm', () => messagesOf(id).filter(([type]) => type === 'message_bot_llm').length === 2);
      // 8 kHz 0x10 from the UUID until the caller's first audio names its kind (at most a frame or two here, as
      // the caller starts sending at once), then the caller's kind only.
      const firstOfKind = caller.frames.findIndex((f) => f.kind === kind);
      expect(firstOfKind).toBeLessThan(10);
      expect(caller.frames.slice(0, firstOfKind).every((f) => f.kind === 0x10 && f.bytes === 320)).toBe(true);
      expect(new Set(caller.frames.slice(firstOfKind).map((f) => f.kind))).toEqual(new Set([kind]));
      expect(new Set(caller.frames.slice(firstOfKind).map((f) => f.bytes))).toEqual(new Set([bytes]));
      const answer = caller.voiced(speechEnd);
      const gaps = answer.slice(1).map((f, i) => f.at - (answer[i] as { at: number }).at).sort((a, b) => a - b);
      // Paced, not dumped (a dump arrives < 1 ms apart); sanity bounds only, the pacing figures are the bench's.
      expect(gaps[Math.floor(gaps.length / 2)]).toBeGreaterThan(5);
      expect(gaps[Math.floor(gaps.length / 2)]).toBeLessThan(100);

      expect(messagesOf(id)).toEqual([
        ['message_bot_transcription', 'Hello!'],
        ['message_bot_transcription', 'How can I help?'],
        ['message_bot_llm', 'Hello! How can I help?'],
        ['message_user_transcription', 'hello world'],
        ['message_user_llm', 'hello world'],
        ['message_bot_transcription', 'You said hello world.'],
        ['message_bot_transcription', 'Anything else?'],
        ['message_bot_llm', 'You said hello world. Anything else?'],
      ]);
      const gens = cartesia.generationRequests.filter((g) => typeof g.transcript === 'string' && g.transcript !== '');
      const last = gens[gens.length - 1] as Record<string, unknown>;
      expect(last).toMatchObject({ model_id: 'sonic-3', voice: { mode: 'id', id: 'voice-123' } });
      expect(last.output_format).toMatchObject({ encoding: 'pcm_s16le', sample_rate: 16000 });
      expect(new Set(gens.slice(-4).map((g) => g.context_id)).size).toBe(2);
    } finally {
      await caller.hangup();
    }
    await waitUntil('terminated', () => callEvents(id).includes('pipecatcall_terminated'));
    expect(callEvents(id)).toEqual(['pipecatcall_created', 'pipecatcall_initialized', 'pipecatcall_terminated']);
  }, 40_000);

  it('barge-in: the bot stops within 2 frames, LLM and TTS are cancelled, the context keeps what was spoken', async () => {
    const id = randomUUID();
    const requestsBefore = openai.requests.length;
    const cancelsBefore = cartesia.cancels.length;
    const abortedBefore = openai.abortedCount;
    const long = Array.from({ length: 30 }, (_, i) => ` Sentence number ${i + 1} of a long answer.`);
    openai.enqueue({ text: ['Welcome to the test line.', ...long], delayMs: 60 }, { text: ['Sorry, go ahead.'] });
    expect((await create(cloudCall(id))).status_code).toBe(200);
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
    const notices: Array<[string, number]> = [];
    try {
      await caller.until(() => caller.voiced().length > 40, 'the bot to be talking');
      const call = t.app.calls.session(id);
      const listener: CallListener = { notice: (type) => notices.push([type, performance.now()]) };
      call?.listeners.add(listener);
      const speaking = caller.say(await loadPrompt('hello-world'));
      await waitUntil('the VAD to hear the caller', () => notices.some(([type]) => type === 'user-started-speaking'));
      const detectedAt = notices.find(([type]) => type === 'user-started-speaking')?.[1] ?? 0;
      // The caller's first words (an interim) confirm the barge-in: without words it would be a false one.
      deepgram.sendResults('hello', { isFinal: false }, deepgram.last);
      await new Promise((r) => setTimeout(r, 200));
      const after = caller.voiced(detectedAt);
      expect(after.length).toBeLessThanOrEqual(2);
      // The words travel through the STT's WebSocket first: on a loaded machine that can take more than 200 ms.
      await waitUntil('the LLM and TTS to be cancelled', () => openai.abortedCount > abortedBefore && cartesia.cancels.length > cancelsBefore);
      await speaking;
      deepgram.sendResults('hello world', { isFinal: true, speechFinal: true }, deepgram.last);
      await openai.waitForRequests(requestsBefore + 2);
      const messages = (openai.requests[requestsBefore + 1]?.body as { messages: Array<{ role: string; content: string }> }).messages;
      const spoken = messages[1];
      expect(spoken?.role).toBe('assistant');
      const full = ['Welcome to the test line.', ...long].join('');
      expect(spoken?.content.length).toBeGreaterThan(5);
      expect(spoken?.content.length).toBeLessThan(full.length / 2);
      expect(full.replace(/\s+/g, ' ').startsWith(spoken?.content.replace(/[.]$/, '') ?? 'x')).toBe(true);
      expect(messages[2]).toEqual({ role: 'user', content: 'hello world' });
      const botLlm = messagesOf(id).filter(([type]) => type === 'message_bot_llm');
      expect(botLlm[0]?.[1]).toBe(spoken?.content);
      const interruptions = await t.metrics.registry.getSingleMetricAsString('pipecat_manager_interruptions_total');
      expect(interruptions).toMatch(/pipecat_manager_interruptions_total\{kind="confirmed"\} [1-9]/);
    } finally {
      await caller.hangup();
    }
  }, 40_000);
});

describe("ai-manager's default create", () => {
  it('an ai_call with ElevenLabs voice EXAVITQu4vr4xnSDxMaL, Deepgram and function/"" roles gets a 200 and a talking bot', async () => {
    const aicallId = randomUUID();
    aicalls.set(aicallId, { referenceType: 'call', answerTools: true });
    const before = openai.requests.length;
    openai.enqueue({ text: ['Hello from the assistant.', ' How can I help?'] });
    const id = randomUUID();
    const reply = await create({
      id,
      reference_type: 'ai_call',
      reference_id: aicallId,
      llm_type: 'openai.gpt-4o-mini',
      llm_messages: [
        { role: 'system', content: 'Be brief.' },
        { role: '', content: 'The caller is known.' },
        { role: 'assistant', content: null, function_call: { name: 'get_variables', arguments: '{}' } },
        { role: 'function', name: 'get_variables', content: '{"name":"Ann"}' },
      ],
      stt_type: 'deepgram',
      stt_language: 'en-US',
      tts_type: 'elevenlabs',
      tts_language: 'en-US',
      tts_voice_id: 'EXAVITQu4vr4xnSDxMaL',
    });
    expect(reply.status_code).toBe(200);
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
    try {
      await caller.until(() => caller.voiced().length > 20, 'the ElevenLabs greeting on the wire');
      const upgrade = elevenlabs.upgrades.at(-1);
      expect(upgrade?.path).toBe('/v1/text-to-speech/EXAVITQu4vr4xnSDxMaL/multi-stream-input');
      expect(upgrade?.query).toMatchObject({ output_format: 'pcm_16000', language_code: 'en' });
      const texts = elevenlabs.messages.filter((m) => m.flush === true).map((m) => m.text);
      expect(texts).toContain('Hello from the assistant. ');
      const messages = (openai.requests[before]?.body as { messages: Array<Record<string, unknown>> }).messages;
      expect(messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool']);
      expect(openai.requests[before]?.headers.authorization).toBe('Bearer sk-engine-key-from-ai-manager');
      expect(elevenlabs.violations).toEqual([]);
    } finally {
      await caller.hangup();
    }
    await waitUntil('terminated', () => callEvents(id).includes('pipecatcall_terminated'));
  }, 40_000);
});

describe('ai_call sessions', () => {
  it('a text-only session runs tools through ai-manager and answers messages with events', async () => {
    const aicallId = randomUUID();
    aicalls.set(aicallId, { referenceType: 'conversation', answerTools: true });
    const before = openai.requests.length;
    openai.enqueue(
      { text: ['Hi, this is the assistant.'] },
      { toolCalls: [{ id: 'call_1', name: 'connect_call', arguments: ['{"destinations":[{"type":"tel",', '"target":"+15551234567"}],', '"run_llm":true}'] }] },
      { text: ['Connecting you now.'] },
    );
    const id = randomUUID();
    expect((await create({ id, reference_type: 'ai_call', reference_id: aicallId, llm_type: 'openai.gpt-4o-mini' })).status_code).toBe(200);
    await waitUntil('the greeting', () => messagesOf(id).some(([type]) => type === 'message_bot_llm'));
    expect(openai.requests[before]?.headers.authorization).toBe('Bearer sk-engine-key-from-ai-manager');
    const tools = (openai.requests[before]?.body as { tools: Array<{ function: { name: string } }> }).tools.map((x) => x.function.name);
    expect(tools).toEqual([
      'connect_call',
      'send_email',
      'stop_media',
      'send_message',
      'stop_service',
      'stop_flow',
      'set_variables',
      'get_variables',
      'get_aicall_messages',
    ]);
    const reply = await rpc.request(HOST, {
      uri: '/v1/messages',
      method: 'POST',
      data: { pipecatcall_id: id, message_text: 'Please connect me to sales', run_immediately: true, audio_response: false },
    });
    expect((reply.json as { status_code: number }).status_code).toBe(200);
    await openai.waitForRequests(before + 3);
    const exec = toolRequests.find((r) => String(r.uri) === `/v1/aicalls/${aicallId}/tool_execute`);
    expect(exec?.method).toBe('POST');
    expect(exec?.publisher).toBe('pipecat-manager');
    expect(exec?.data).toEqual({
      id: 'call_1',
      type: 'function',
      function: { name: 'connect_call', arguments: '{"destinations":[{"type":"tel","target":"+15551234567"}]}' },
    });
    const third = (openai.requests[before + 2]?.body as { messages: unknown[] }).messages;
    expect(third.slice(-2)).toEqual([
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'connect_call', arguments: '{"destinations":[{"type":"tel","target":"+15551234567"}],"run_llm":true}' } }],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '{"status":"ok","call_id":"c-42"}' },
    ]);
    await waitUntil('the answer', () => messagesOf(id).some(([type, text]) => type === 'message_bot_llm' && text === 'Connecting you now.'));
    expect(messagesOf(id)).toEqual([
      ['message_bot_llm', 'Hi, this is the assistant.'],
      ['message_user_llm', 'Please connect me to sales'],
      ['message_bot_llm', 'Connecting you now.'],
    ]);
    await rpc.request(HOST, { uri: `/v1/pipecatcalls/${id}/stop`, method: 'POST' });
  }, 30_000);

  it('an ai-manager that does not answer a tool becomes an error result and the LLM runs again', async () => {
    const aicallId = randomUUID();
    aicalls.set(aicallId, { referenceType: 'task', answerTools: false });
    const before = openai.requests.length;
    openai.enqueue(
      { text: ['Ready.'] },
      { toolCalls: [{ id: 'call_9', name: 'get_variables', arguments: ['{}'] }] },
      { text: ['I could not read the variables.'] },
    );
    const id = randomUUID();
    await create({ id, reference_type: 'ai_call', reference_id: aicallId, llm_type: 'openai.gpt-4o-mini' });
    await openai.waitForRequests(before + 1);
    await rpc.request(HOST, { uri: '/v1/messages', method: 'POST', data: { pipecatcall_id: id, message_text: 'vars?', run_immediately: true } });
    await openai.waitForRequests(before + 3, 10_000);
    const third = (openai.requests[before + 2]?.body as { messages: Array<{ role: string; content: string }> }).messages;
    const tool = third[third.length - 1];
    expect(tool?.role).toBe('tool');
    const result = JSON.parse(tool?.content ?? '{}') as { status: string; error: string };
    expect(result.status).toBe('error');
    expect(result.error).toMatch(/timed out/);
    await rpc.request(HOST, { uri: `/v1/pipecatcalls/${id}/stop`, method: 'POST' });
  }, 30_000);
});

describe('provider failures', () => {
  it('two failed LLM runs end the call with llm_error', async () => {
    const aicallId = randomUUID();
    aicalls.set(aicallId, { referenceType: 'conversation', answerTools: true });
    openai.enqueue(...Array.from({ length: 4 }, () => ({ error: { status: 500 } }))); // 2 runs × (request + its 1 retry)
    const before = openai.requests.length;
    const id = randomUUID();
    await create({ id, reference_type: 'ai_call', reference_id: aicallId, llm_type: 'openai.gpt-4o-mini' });
    await waitUntil('the pipeline', () => t.app.calls.session(id)?.pipelineRunning === true);
    await waitUntil('the first failure', () => openai.requests.length === before + 2 && openai.requests.at(-1)?.outcome !== undefined);
    await rpc.request(HOST, { uri: '/v1/messages', method: 'POST', data: { pipecatcall_id: id, message_text: 'hello?', run_immediately: true } });
    await waitUntil('llm_error termination', () => callEvents(id).includes('pipecatcall_terminated'));
    const text = await t.metrics.registry.getSingleMetricAsString('pipecat_manager_calls_terminated_total');
    expect(text).toMatch(/reason="llm_error"} 1/);
    const errors = await t.metrics.registry.getSingleMetricAsString('pipecat_manager_provider_errors_total');
    expect(errors).toMatch(/provider="openai.gpt-4o-mini",stage="llm"} 2/);
  }, 20_000);

  it('an STT that refuses the connection ends the call with stt_error and hands it back to the dialplan', async () => {
    deepgram.refuseUpgrades(500, 1);
    const id = randomUUID();
    openai.enqueue({ text: ['Hello.'] });
    await create(cloudCall(id));
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
    try {
      await waitUntil('stt_error termination', () => callEvents(id).includes('pipecatcall_terminated'));
      await caller.client.closed;
      expect(caller.hangupReceived).toBe(true);
      const text = await t.metrics.registry.getSingleMetricAsString('pipecat_manager_calls_terminated_total');
      expect(text).toMatch(/reason="stt_error"} 1/);
    } finally {
      await caller.hangup();
    }
  }, 20_000);

  it('two failed TTS turns end the call with tts_error; the call does not hang', async () => {
    const id = randomUUID();
    openai.enqueue({ text: ['First try.'] }, { text: ['Second try.'] });
    cartesia.faults.push({ kind: 'error', message: 'voice not found' }, { kind: 'error', message: 'voice not found' });
    await create(cloudCall(id));
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
    try {
      await waitUntil('the pipeline', () => t.app.calls.session(id)?.pipelineRunning === true);
      await waitUntil('the first TTS failure', () => cartesia.faults.length === 1);
      await caller.say(await loadPrompt('hello-world'));
      deepgram.sendResults('hello world', { isFinal: true, speechFinal: true }, deepgram.last);
      await waitUntil('tts_error termination', () => callEvents(id).includes('pipecatcall_terminated'));
      const text = await t.metrics.registry.getSingleMetricAsString('pipecat_manager_calls_terminated_total');
      expect(text).toMatch(/reason="tts_error"} 1/);
    } finally {
      await caller.hangup();
    }
  }, 20_000);
});
