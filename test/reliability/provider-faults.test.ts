// SPEC §13 (providers) through the official SDKs against the local fakes: refused connections, HTTP 500s,
// malformed streams and stalls of the LLM, the STT and the TTS, on real calls (Audiosocket, or text-only
// ai_call sessions). Each ends as SPEC §3.3–3.5 says — the STT reconnects once, two failed LLM runs or TTS turns in
// a row end the call with <stage>_error, a single failure is survived — and always in bounded time.
//
// The providers' stall and connect timeouts are not settings of the App (no environment variable or flag): the
// defaults are 10 s (LLM first token), 15 s (LLM idle), 20 s (Deepgram stall), 5 s (Deepgram connect), 10 s
// (Cartesia stall and connect). The tests build the same providers with 1.5 s timeouts through a ProviderRegistry
// subclass, so that "bounded" is seconds here.

import { randomUUID } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics.js';
import { meteredStt } from '../../src/providers/base/stt.js';
import { meteredTts } from '../../src/providers/base/tts.js';
import { createOpenAiLlm } from '../../src/providers/llm/openai.js';
import { ProviderRegistry } from '../../src/providers/registry.js';
import { parseLlmType } from '../../src/providers/registry.js';
import { createDeepgramStt } from '../../src/providers/stt/deepgram.js';
import { createCartesiaTts } from '../../src/providers/tts/cartesia.js';
import type { LlmClient, SttProvider, TtsProvider } from '../../src/providers/types.js';
import { FakeCartesiaServer } from '../fakes/cartesia-server.js';
import { FakeDeepgramServer } from '../fakes/deepgram-server.js';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../fakes/openai-server.js';
import { TestCaller, loadPrompt } from '../helpers/caller.js';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, testConfig, type TestApp, type TestServices } from '../helpers/test-app.js';
import { metricByLabel, metricSum } from './support/metrics-text.js';
import { FULL } from './support/scale.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';
const AI_MANAGER = 'bin-manager.ai-manager.request';
const OPENAI_KEY = 'sk-test-openai-reliability-0123';
const DEEPGRAM_KEY = 'dg-test-reliability-0123';
const CARTESIA_KEY = 'sk_car_reliability_0123';
/** Every provider timeout of this file. */
const TIMEOUT_MS = 1_500;
/** What "bounded" means here: two timeouts and the teardown, with room for a busy machine. */
const BOUND_MS = 4 * TIMEOUT_MS + 4_000;

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;
let events: EventSubscription;
let openai: FakeOpenAiServer;
let deepgram: FakeDeepgramServer;
let cartesia: FakeCartesiaServer;
/** A port nothing listens on: connections to it are refused. */
let closedPort = 0;
/** Per-case switches read by the registry below. */
let deepgramRefused = false;
let cartesiaRefused = false;

/** The App's providers, built as ProviderRegistry builds them but with short timeouts and switchable endpoints. */
class ShortTimeoutProviders extends ProviderRegistry {
  override llmClient(llmType: string, engineKey: string): LlmClient {
    const { vendor, model } = parseLlmType(llmType);
    if (vendor !== 'openai') return super.llmClient(llmType, engineKey);
    const baseUrl = model === 'refused' ? `http://127.0.0.1:${closedPort}/v1` : openai.baseUrl;
    return createOpenAiLlm({ vendor, model, apiKey: OPENAI_KEY, baseUrl, firstTokenTimeoutMs: TIMEOUT_MS, idleTimeoutMs: TIMEOUT_MS, metrics: this.metrics });
  }

  override sttProvider(type: string): SttProvider {
    if (type !== 'deepgram') return super.sttProvider(type);
    const provider = createDeepgramStt({
      apiKey: DEEPGRAM_KEY,
      baseUrl: deepgramRefused ? `http://127.0.0.1:${closedPort}` : deepgram.url,
      connectTimeoutMs: TIMEOUT_MS,
      stallTimeoutMs: TIMEOUT_MS,
      closeGraceMs: 300,
    });
    return meteredStt(provider, this.metrics);
  }

  override ttsProvider(type: string): TtsProvider {
    if (type !== 'cartesia') return super.ttsProvider(type);
    const provider = createCartesiaTts({
      apiKey: CARTESIA_KEY,
      baseUrl: cartesia.baseUrl,
      createConnection: () => (cartesiaRefused ? connect({ host: '127.0.0.1', port: closedPort }) : cartesia.createConnection()),
      stallTimeoutMs: TIMEOUT_MS,
      connectTimeoutMs: TIMEOUT_MS,
    });
    return meteredTts(provider, this.metrics);
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

beforeAll(async () => {
  [openai, deepgram, cartesia, services, closedPort] = await Promise.all([
    startFakeOpenAiServer(),
    FakeDeepgramServer.start({ apiKey: DEEPGRAM_KEY }),
    FakeCartesiaServer.start({ apiKey: CARTESIA_KEY }),
    createTestServices(),
    freePort(),
  ]);
  openai.setHandler(() => ({ text: ['Hello there.'] }));
  const env = {
    OPENAI_API_KEY: OPENAI_KEY,
    OPENAI_BASE_URL: openai.baseUrl,
    DEEPGRAM_API_KEY: DEEPGRAM_KEY,
    DEEPGRAM_BASE_URL: deepgram.url,
    CARTESIA_API_KEY: CARTESIA_KEY,
    CARTESIA_BASE_URL: cartesia.baseUrl,
  };
  const metrics = new Metrics({ defaultMetrics: false });
  const providers = new ShortTimeoutProviders(testConfig(services, env), {}, metrics.providers);
  t = await startTestApp(services, env, { providers, metrics });
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  events = await rpc.subscribeEvents();
  await rpc.respondOn(AI_MANAGER, (req) => {
    const m = /^\/v1\/aicalls\/([0-9a-f-]{36})$/.exec(String(req.uri));
    if (m === null) return Buffer.from('{"status_code":404,"data_type":""}');
    const data = { id: m[1], reference_type: 'conversation', reference_id: randomUUID(), ai_id: '' };
    return Buffer.from(JSON.stringify({ status_code: 200, data_type: 'application/json', data }));
  });
});

afterEach(async () => {
  // Nothing of a case survives it: no call, no provider connection.
  await waitUntil('no live call', () => t.app.inspect().calls === 0, 10_000);
  await waitUntil('no open Deepgram session', () => deepgram.openConnections === 0, 5_000);
  deepgram.reset();
  cartesia.faults.length = 0;
  cartesia.rejectUpgrades = null;
  deepgramRefused = false;
  cartesiaRefused = false;
});

afterAll(async () => {
  await events?.close();
  await rpc?.close();
  await t?.stop();
  await Promise.allSettled([openai?.close(), deepgram?.close(), cartesia?.close()]);
  await services?.dropAll();
});

type Ev = { type: string; data: { id?: string; pipecatcall_id?: string; text?: string } };
const messagesOf = (id: string, type: string): string[] =>
  (events.events as Ev[]).filter((e) => e.data.pipecatcall_id === id && e.type === type).map((e) => e.data.text ?? '');
const terminated = (id: string): boolean => (events.events as Ev[]).some((e) => e.type === 'pipecatcall_terminated' && e.data.id === id);

async function create(data: Record<string, unknown>): Promise<void> {
  const reply = await rpc.request(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data });
  expect((reply.json as { status_code: number }).status_code).toBe(200);
}

async function message(id: string, text: string): Promise<void> {
  await rpc.request(HOST, { uri: '/v1/messages', method: 'POST', data: { pipecatcall_id: id, message_text: text, run_immediately: true } });
}

async function stop(id: string): Promise<void> {
  await rpc.request(HOST, { uri: `/v1/pipecatcalls/${id}/stop`, method: 'POST' });
}

const providerErrors = (stage: string): Promise<number> => metricSum(t.metrics, 'pipecat_manager_provider_errors_total', { stage });

/** Waits for the call to end and returns why (the calls_terminated_total reason that grew) and how long it took. */
async function ended(id: string, since: Map<string, number>, from: number): Promise<{ reason: string; ms: number }> {
  await waitUntil(`call ${id} to end`, () => terminated(id), BOUND_MS + 5_000);
  const ms = performance.now() - from;
  const after = await metricByLabel(t.metrics, 'pipecat_manager_calls_terminated_total', 'reason');
  const grown = [...after].filter(([k, v]) => v > (since.get(k) ?? 0)).map(([k]) => k);
  expect(grown).toHaveLength(1);
  return { reason: grown[0] ?? '', ms };
}

const reasons = (): Promise<Map<string, number>> => metricByLabel(t.metrics, 'pipecat_manager_calls_terminated_total', 'reason');

// ----- LLM: text-only ai_call sessions; the greeting is run 1, a message is run 2. --------------------------------

interface LlmCase {
  name: string;
  short: boolean;
  llmType?: string;
  /** What the fake streamed before failing ('' when nothing): the most a failed run may be reported as saying. */
  partial: string;
  /** Replies for run 1 and run 2 (none for a refused connection). */
  replies: Parameters<FakeOpenAiServer['enqueue']>;
}

const LLM_FAILURES: LlmCase[] = [
  { name: 'connection refused', short: true, llmType: 'openai.refused', partial: '', replies: [] },
  { name: 'HTTP 500', short: false, partial: '', replies: [{ error: { status: 500 } }, { error: { status: 500 } }] },
  { name: 'HTTP 429 with Retry-After 30', short: false, partial: '', replies: [{ error: { status: 429, headers: { 'retry-after': '30' } } }, { error: { status: 429, headers: { 'retry-after': '30' } } }] },
  { name: 'a malformed SSE line', short: true, partial: 'A', replies: [{ text: ['A', 'B', 'C'], fault: 'malformed', faultAfter: 1 }, { text: ['A', 'B'], fault: 'malformed', faultAfter: 1 }] },
  { name: 'an error event mid-stream', short: false, partial: 'A', replies: [{ text: ['A', 'B'], fault: 'error-event', faultAfter: 1 }, { text: ['A', 'B'], fault: 'error-event', faultAfter: 1 }] },
  { name: 'a TCP reset mid-stream', short: false, partial: 'A', replies: [{ text: ['A', 'B'], fault: 'reset', faultAfter: 1 }, { text: ['A', 'B'], fault: 'reset', faultAfter: 1 }] },
  { name: 'a stall mid-stream', short: true, partial: 'Hel', replies: [{ text: ['Hel', 'lo.'], fault: 'stall', faultAfter: 1 }, { text: ['Hel', 'lo.'], fault: 'stall', faultAfter: 1 }] },
  { name: 'no response at all (headers never sent)', short: false, partial: '', replies: [{ hang: true }, { hang: true }] },
  { name: 'a stream cut off without finish_reason', short: false, partial: 'Cut', replies: [{ text: ['Cut'], finishReason: null, done: false }, { text: ['Cut'], finishReason: null, done: false }] },
];

async function textSession(llmType: string): Promise<string> {
  const id = randomUUID();
  await create({ id, reference_type: 'ai_call', reference_id: randomUUID(), llm_type: llmType });
  return id;
}

describe('LLM faults (text-only sessions)', () => {
  for (const c of LLM_FAILURES.filter((x) => FULL || x.short)) {
    it(`${c.name}, twice in a row: llm_error in bounded time, nothing invented published`, async () => {
      openai.enqueue(...c.replies);
      const since = await reasons();
      const errorsBefore = await providerErrors('llm');
      const started = performance.now();
      const id = await textSession(c.llmType ?? 'openai.gpt-4o-mini');
      await waitUntil('the first LLM failure', async () => (await providerErrors('llm')) > errorsBefore, BOUND_MS);
      expect(terminated(id)).toBe(false); // one failure is survived
      await message(id, 'are you there?');
      const { reason, ms } = await ended(id, since, started);
      console.log(`LLM ${c.name}: ended with ${reason} after ${ms.toFixed(0)} ms`);
      expect(reason).toBe('llm_error');
      expect(ms).toBeLessThan(BOUND_MS);
      expect((await providerErrors('llm')) - errorsBefore).toBe(2);
      // Never more than the provider really sent: no invented or completed text. (What the fake streamed before
      // failing IS published as message_bot_llm and kept in the context: see the closing note of the issue.)
      for (const text of messagesOf(id, 'message_bot_llm')) expect(text).toBe(c.partial);
    });
  }

  it('one failed run is survived: the next run answers and the call goes on', async () => {
    openai.enqueue({ error: { status: 500 } }, { text: ['Back', ' again.'] });
    const errorsBefore = await providerErrors('llm');
    const id = await textSession('openai.gpt-4o-mini');
    await waitUntil('the first LLM failure', async () => (await providerErrors('llm')) > errorsBefore, BOUND_MS);
    await message(id, 'hello?');
    await waitUntil('the answer', () => messagesOf(id, 'message_bot_llm').includes('Back again.'), BOUND_MS);
    expect(terminated(id)).toBe(false);
    await stop(id);
  });
});

// ----- STT: Audiosocket calls with Deepgram (no TTS: the echo LLM answers in events). ------------------------------

async function sttCall(): Promise<{ id: string; caller: TestCaller }> {
  const id = randomUUID();
  await create({ id, reference_type: 'call', llm_type: 'local.echo', stt_type: 'deepgram', stt_language: 'en-US' });
  const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
  return { id, caller };
}

/** A user turn: real speech on the line, then Deepgram's final result; the echo LLM answers it. */
async function userTurn(id: string, caller: TestCaller, text: string): Promise<void> {
  await caller.say(await loadPrompt('hello-world'));
  await deepgram.waitFor(() => deepgram.openConnections > 0, 'a live Deepgram session');
  deepgram.sendResults(text, { isFinal: true, speechFinal: true }, deepgram.last);
  await waitUntil(`the answer to "${text}"`, () => messagesOf(id, 'message_bot_llm').some((m) => m.includes(text)), BOUND_MS);
}

interface SttCase {
  name: string;
  short: boolean;
  arrange(): void;
}

const STT_FAILURES: SttCase[] = [
  { name: 'connection refused', short: true, arrange: () => (deepgramRefused = true) },
  { name: 'HTTP 500 at the upgrade', short: false, arrange: () => deepgram.refuseUpgrades(500) },
  { name: 'an upgrade that is never answered', short: false, arrange: () => deepgram.stallUpgrade() },
  { name: 'the stream dropped again after its reconnect', short: false, arrange: () => deepgram.dropAfter(8_000, 'always') },
  { name: 'a stream that stalls (audio in, nothing out)', short: true, arrange: () => deepgram.stall() },
];

describe('STT faults (Audiosocket calls)', () => {
  for (const c of STT_FAILURES.filter((x) => FULL || x.short)) {
    it(`${c.name}: stt_error in bounded time, the call handed back to the dialplan`, async () => {
      c.arrange();
      const since = await reasons();
      const started = performance.now();
      const { id, caller } = await sttCall();
      try {
        const { reason, ms } = await ended(id, since, started);
        console.log(`STT ${c.name}: ended with ${reason} after ${ms.toFixed(0)} ms`);
        expect(reason).toBe('stt_error');
        expect(ms).toBeLessThan(BOUND_MS);
        await Promise.race([caller.client.closed, new Promise((r) => setTimeout(r, 3_000))]);
        expect(caller.hangupReceived).toBe(true);
        expect(await providerErrors('stt')).toBeGreaterThan(0);
      } finally {
        await caller.hangup();
      }
    });
  }

  it('a stream dropped once is reconnected transparently: the next turn is heard and answered', async () => {
    deepgram.dropAfter(8_000, 'once');
    const { id, caller } = await sttCall();
    try {
      await deepgram.waitFor(() => deepgram.connections.length >= 2 && deepgram.openConnections === 1, 'the reconnect', BOUND_MS);
      await userTurn(id, caller, 'hello world');
      expect(terminated(id)).toBe(false);
      expect(caller.client.isClosed).toBe(false);
    } finally {
      await caller.hangup();
    }
  });

  it('malformed messages from the STT are counted and skipped; the call goes on', async () => {
    const { id, caller } = await sttCall();
    try {
      await deepgram.waitFor(() => deepgram.openConnections === 1, 'the Deepgram session');
      const before = await providerErrors('stt');
      deepgram.sendRaw('this is not JSON');
      deepgram.sendRaw('{"type":"SomethingNew"}');
      deepgram.sendRaw('{"type":"Results","channel":{}}');
      await waitUntil('the malformed messages to be counted', async () => (await providerErrors('stt')) - before >= 3, BOUND_MS);
      await userTurn(id, caller, 'still here');
      expect(terminated(id)).toBe(false);
    } finally {
      await caller.hangup();
    }
  });
});

// ----- TTS: Audiosocket calls with Cartesia; the greeting is turn 1, a DTMF answer turn 2. --------------------------

async function ttsCall(): Promise<{ id: string; caller: TestCaller }> {
  const id = randomUUID();
  await create({ id, reference_type: 'call', llm_type: 'local.echo', tts_type: 'cartesia', tts_voice_id: 'voice-1', llm_messages: [{ role: 'user', content: 'ready' }] });
  const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
  return { id, caller };
}

interface TtsCase {
  name: string;
  short: boolean;
  arrange(): void;
  /** The failure comes when the session opens (no turn is ever tried). */
  atOpen?: boolean;
}

const TTS_FAILURES: TtsCase[] = [
  { name: 'connection refused', short: true, atOpen: true, arrange: () => (cartesiaRefused = true) },
  { name: 'HTTP 500 at the upgrade', short: false, atOpen: true, arrange: () => (cartesia.rejectUpgrades = 500) },
  { name: 'an error message for the context', short: false, arrange: () => cartesia.faults.push({ kind: 'error', statusCode: 500 }, { kind: 'error', statusCode: 500 }) },
  { name: 'a malformed message', short: true, arrange: () => cartesia.faults.push({ kind: 'malformed', afterChunks: 1 }, { kind: 'malformed' }) },
  { name: 'a stall mid-turn', short: true, arrange: () => cartesia.faults.push({ kind: 'stall', afterChunks: 1 }, { kind: 'stall' }) },
  { name: 'the connection dropped mid-turn', short: false, arrange: () => cartesia.faults.push({ kind: 'close', afterChunks: 1 }, { kind: 'close' }) },
];

describe('TTS faults (Audiosocket calls)', () => {
  for (const c of TTS_FAILURES.filter((x) => FULL || x.short)) {
    it(`${c.name}${c.atOpen === true ? '' : ', twice in a row'}: tts_error in bounded time, the call handed back`, async () => {
      c.arrange();
      const since = await reasons();
      const errorsBefore = await providerErrors('tts');
      const started = performance.now();
      const { id, caller } = await ttsCall();
      try {
        if (c.atOpen !== true) {
          await waitUntil('the first TTS failure', async () => (await providerErrors('tts')) > errorsBefore, BOUND_MS);
          expect(terminated(id)).toBe(false);
          caller.dtmf('1#');
        }
        const { reason, ms } = await ended(id, since, started);
        console.log(`TTS ${c.name}: ended with ${reason} after ${ms.toFixed(0)} ms`);
        expect(reason).toBe('tts_error');
        expect(ms).toBeLessThan(BOUND_MS);
        await Promise.race([caller.client.closed, new Promise((r) => setTimeout(r, 3_000))]);
        expect(caller.hangupReceived).toBe(true);
      } finally {
        await caller.hangup();
      }
    });
  }

  it('one failed turn is survived: the next turn is spoken', async () => {
    cartesia.faults.push({ kind: 'close', afterChunks: 1 });
    const errorsBefore = await providerErrors('tts');
    const { id, caller } = await ttsCall();
    try {
      await waitUntil('the failed greeting', async () => (await providerErrors('tts')) > errorsBefore, BOUND_MS);
      const at = performance.now();
      caller.dtmf('1#');
      // "You pressed 1.": 12 characters of the fake's 10 ms each, 6 frames.
      await caller.until(() => caller.voiced(at).length >= 4, 'the next turn to be spoken', BOUND_MS);
      expect(terminated(id)).toBe(false);
    } finally {
      await caller.hangup();
    }
  });
});
