// A daemon whose cloud providers are the local fakes (OpenAI, Deepgram, Cartesia, ElevenLabs, speaking their real
// protocols through the official SDKs), on isolated services, with a Go-style ai-manager answering on the real
// RabbitMQ: what the voice-cloud test files share.

import { randomUUID } from 'node:crypto';
import { Metrics } from '../../src/metrics.js';
import { ProviderRegistry } from '../../src/providers/registry.js';
import { FakeCartesiaServer } from '../fakes/cartesia-server.js';
import { FakeDeepgramServer } from '../fakes/deepgram-server.js';
import { FakeElevenLabsServer } from '../fakes/elevenlabs-server.js';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../fakes/openai-server.js';
import { RpcTestClient, type EventSubscription } from './rpc-test-client.js';
import { createTestServices, startTestApp, testConfig, type TestApp, type TestServices } from './test-app.js';

export const SHARED_QUEUE = 'bin-manager.pipecat-manager.request';
export const HOST_QUEUE = 'bin-manager.pipecat-manager.request.127.0.0.1';
const AI_MANAGER = 'bin-manager.ai-manager.request';
export const OPENAI_KEY = 'sk-test-openai-0123456789';
export const DEEPGRAM_KEY = 'dg-test-key-0123456789';
const CARTESIA_KEY = 'sk_car_test_0123456789';
const ELEVENLABS_KEY = 'xi_test_key_0123456789';

type Ev = { type: string; data: { pipecatcall_id?: string; id?: string; text?: string } };

export interface CloudApp {
  services: TestServices;
  t: TestApp;
  rpc: RpcTestClient;
  events: EventSubscription;
  openai: FakeOpenAiServer;
  deepgram: FakeDeepgramServer;
  cartesia: FakeCartesiaServer;
  elevenlabs: FakeElevenLabsServer;
  /** The aicalls ai-manager knows: id → its reference type and whether it answers tool calls. */
  aicalls: Map<string, { referenceType: string; answerTools: boolean }>;
  /** Every tool_execute request ai-manager received. */
  toolRequests: Array<Record<string, unknown>>;
  /** POST /v1/pipecatcalls on the shared queue. */
  create(data: Record<string, unknown>): Promise<{ status_code: number; data: Record<string, unknown> }>;
  /** [type, text] of the conversation events of a pipecatcall, in order. */
  messagesOf(id: string): Array<[string, string]>;
  /** The types of the lifecycle events of a pipecatcall, in order. */
  callEvents(id: string): string[];
  /** provider_errors_total for one provider and stage (counted by the provider bases). */
  providerErrors(provider: string, stage: string): Promise<number>;
  close(): Promise<void>;
}

/** A create request for a call through Deepgram, OpenAI and Cartesia. */
export const cloudCall = (id: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
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

export async function startCloudApp(): Promise<CloudApp> {
  const [openai, deepgram, cartesia, elevenlabs, services] = await Promise.all([
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
  const metrics = new Metrics({ defaultMetrics: false });
  const providers = new ProviderRegistry(testConfig(services, env), { cartesiaCreateConnection: cartesia.createConnection }, metrics.providers);
  const t = await startTestApp(services, env, { providers, metrics });
  const rpc = await RpcTestClient.connect(services.rabbitUrl);
  const events = await rpc.subscribeEvents();
  const aicalls = new Map<string, { referenceType: string; answerTools: boolean }>();
  const toolRequests: Array<Record<string, unknown>> = [];
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
  const all = (): Ev[] => events.events as Ev[];
  return {
    services,
    t,
    rpc,
    events,
    openai,
    deepgram,
    cartesia,
    elevenlabs,
    aicalls,
    toolRequests,
    create: async (data) => {
      const reply = await rpc.request(SHARED_QUEUE, { uri: '/v1/pipecatcalls', method: 'POST', data });
      return reply.json as { status_code: number; data: Record<string, unknown> };
    },
    messagesOf: (id) => all().filter((e) => e.data.pipecatcall_id === id).map((e) => [e.type, e.data.text ?? '']),
    callEvents: (id) => all().filter((e) => e.data.id === id).map((e) => e.type),
    providerErrors: async (provider, stage) => {
      const metric = await metrics.providerErrorsTotal.get();
      return metric.values.find((v) => v.labels.provider === provider && v.labels.stage === stage)?.value ?? 0;
    },
    close: async () => {
      await events.close();
      await rpc.close();
      await t.stop();
      await Promise.allSettled([openai.close(), deepgram.close(), cartesia.close(), elevenlabs.close()]);
      await services.dropAll();
    },
  };
}
