// Calls whose STT is Cartesia or ElevenLabs (ai-manager's `stt_type` list), through the official SDKs against the
// local protocol fakes, over a real Audiosocket connection and the real RabbitMQ: the caller's words become the
// LLM's user turn with the call's language passed to the STT, and a refusal the STT reports mid-call ends the
// call with stt_error (no reconnect for a refusal), handing it back to the dialplan.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Metrics } from '../../src/metrics.js';
import { ProviderRegistry } from '../../src/providers/registry.js';
import { FakeCartesiaSttServer } from '../fakes/cartesia-stt-server.js';
import { FakeElevenLabsSttServer } from '../fakes/elevenlabs-stt-server.js';
import type { LiveSttFake } from '../fakes/live-stt-server.js';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../fakes/openai-server.js';
import { TestCaller, loadPrompt } from '../helpers/caller.js';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, testConfig, type TestApp, type TestServices } from '../helpers/test-app.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const OPENAI_KEY = 'sk-test-openai-0123456789';
const CARTESIA_KEY = 'sk_car_test_0123456789';
const ELEVENLABS_KEY = 'xi_test_key_0123456789';

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;
let events: EventSubscription;
let openai: FakeOpenAiServer;
let cartesia: FakeCartesiaSttServer;
let elevenlabs: FakeElevenLabsSttServer;

beforeAll(async () => {
  [openai, cartesia, elevenlabs, services] = await Promise.all([
    startFakeOpenAiServer(),
    FakeCartesiaSttServer.start(CARTESIA_KEY),
    FakeElevenLabsSttServer.start(ELEVENLABS_KEY),
    createTestServices(),
  ]);
  const env = {
    OPENAI_API_KEY: OPENAI_KEY,
    OPENAI_BASE_URL: openai.baseUrl,
    CARTESIA_API_KEY: CARTESIA_KEY,
    CARTESIA_BASE_URL: cartesia.url,
    ELEVENLABS_API_KEY: ELEVENLABS_KEY,
    ELEVENLABS_BASE_URL: elevenlabs.url,
  };
  const providers = new ProviderRegistry(testConfig(services, env));
  t = await startTestApp(services, env, { providers, metrics: new Metrics({ defaultMetrics: false }) });
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  events = await rpc.subscribeEvents();
});

afterAll(async () => {
  await events?.close();
  await rpc?.close();
  await t?.stop();
  await Promise.allSettled([openai?.close(), cartesia?.close(), elevenlabs?.close()]);
  await services?.dropAll();
});

type Ev = { type: string; data: { id?: string } };
const callEvents = (id: string): string[] => (events.events as Ev[]).filter((e) => e.data.id === id).map((e) => e.type);

async function create(data: Record<string, unknown>): Promise<number> {
  const reply = await rpc.request(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data });
  return (reply.json as { status_code: number }).status_code;
}

const call = (id: string, sttType: string): Record<string, unknown> => ({
  id,
  reference_type: 'call',
  llm_type: 'openai.gpt-4o-mini',
  llm_messages: [{ role: 'system', content: 'Be brief.' }],
  stt_type: sttType,
  stt_language: 'de-DE',
  tts_type: 'espeak',
});

const vendors: Array<[string, () => LiveSttFake, Record<string, string>]> = [
  ['cartesia', () => cartesia, { language: 'de' }],
  ['elevenlabs', () => elevenlabs, { language_code: 'de' }],
];

describe.each(vendors)('a call with stt_type %s', (sttType, fake, languageQuery) => {
  it("the caller's words reach the LLM as the user turn; the call's language reaches the STT", async () => {
    const id = randomUUID();
    const before = openai.requests.length;
    const sessions = fake().connections.length;
    openai.enqueue({ text: ['Hallo!'] }, { text: ['Gern geschehen.'] });
    expect(await create(call(id, sttType))).toBe(200);
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
    try {
      await waitUntil('the STT session', () => fake().connections.length === sessions + 1);
      const conn = fake().last;
      expect(conn.query).toMatchObject(languageQuery);
      await openai.waitForRequests(before + 1);
      const audioBefore = conn.audioBytes;
      await caller.say(await loadPrompt('hello-world'));
      // The STT got the caller's audio, resampled to 16 kHz, before it had anything to say.
      await waitUntil('audio at the STT', () => conn.audioBytes - audioBefore > 16_000);
      fake().sendTranscript('danke', false, conn);
      fake().sendTranscript('danke schön', true, conn);
      await openai.waitForRequests(before + 2);
      const body = openai.requests[before + 1]?.body as { messages: Array<{ role: string; content: unknown }> };
      expect(body.messages.at(-1)).toEqual({ role: 'user', content: 'danke schön' });
    } finally {
      await caller.hangup();
    }
    await waitUntil('terminated', () => callEvents(id).includes('pipecatcall_terminated'));
  }, 30_000);

  it('a refusal the STT reports mid-call ends the call with stt_error and hands it back to the dialplan', async () => {
    const id = randomUUID();
    const sessions = fake().connections.length;
    const metric = async (): Promise<number> => {
      const text = await t.metrics.registry.getSingleMetricAsString('pipecat_manager_calls_terminated_total');
      return Number(/reason="stt_error"} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const sttErrorsBefore = await metric();
    openai.enqueue({ text: ['Hallo!'] });
    expect(await create(call(id, sttType))).toBe(200);
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
    try {
      await waitUntil('the STT session', () => fake().connections.length === sessions + 1);
      // Mid-call: once the pipeline runs (a fatal STT error before that is not turned into the call's end yet).
      await waitUntil('the pipeline', () => t.app.calls.session(id)?.pipelineRunning === true);
      const conn = fake().last;
      if (fake() === cartesia) cartesia.sendError(402, 'Payment Required', 'out of credits', conn);
      else elevenlabs.sendError('quota_exceeded', 'quota exceeded', conn);
      conn.ws.close(1008, 'refused');
      await waitUntil('stt_error termination', () => callEvents(id).includes('pipecatcall_terminated'));
      await caller.client.closed;
      expect(caller.hangupReceived).toBe(true);
      expect(await metric()).toBe(sttErrorsBefore + 1);
      // A refusal is not retried: no second session was dialled.
      expect(fake().connections.length).toBe(sessions + 1);
    } finally {
      await caller.hangup();
    }
  }, 30_000);
});
