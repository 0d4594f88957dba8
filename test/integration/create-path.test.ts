// The create path of an ai_call as ai-manager drives it (issue 11 item 5): only the sibling requests the old
// service made (GET /v1/aicalls/<id>, then POST /v1/external-medias), the AI's key asked for later (when the
// pipeline starts), and a failing key lookup falls back to the instance's key instead of failing anything.
// Go-style ai-manager and call-manager on the real RabbitMQ; the LLM is the OpenAI fake, which records the key.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { AudiosocketClient } from '../../src/transports/audiosocket/client.js';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../fakes/openai-server.js';
import { RpcTestClient } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const INSTANCE_KEY = 'sk-instance-key-0001';
const AI_KEY = 'sk-ai-own-key-0002';

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;
let openai: FakeOpenAiServer;
/** Every sibling request in arrival order: `<sibling> <METHOD> <uri>`. */
const seen: string[] = [];
/** aicall id → its AI id; AI ids in `failingAis` answer 500. */
const aicalls = new Map<string, string>();
const failingAis = new Set<string>();

const ok = (data: unknown): Buffer => Buffer.from(JSON.stringify({ status_code: 200, data_type: 'application/json', data }));

beforeAll(async () => {
  services = await createTestServices();
  openai = await startFakeOpenAiServer();
  openai.setHandler(() => ({ text: ['Hello', '.'] }));
  t = await startTestApp(services, { CALL_MANAGER: 'on', OPENAI_API_KEY: INSTANCE_KEY, OPENAI_BASE_URL: openai.baseUrl });
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  await rpc.respondOn('bin-manager.ai-manager.request', (req) => {
    const uri = String(req.uri);
    seen.push(`ai-manager ${String(req.method)} ${uri}`);
    const aicallId = uri.split('/')[3] ?? '';
    if (uri.startsWith('/v1/aicalls/') && aicalls.has(aicallId)) {
      return ok({ id: aicallId, ai_id: aicalls.get(aicallId), reference_type: 'call', reference_id: randomUUID() });
    }
    if (uri.startsWith('/v1/ais/')) {
      const aiId = uri.split('/')[3] ?? '';
      if (failingAis.has(aiId)) return Buffer.from('{"status_code":500,"data_type":""}');
      return ok({ id: aiId, engine_key: AI_KEY });
    }
    return Buffer.from('{"status_code":404,"data_type":""}');
  });
  await rpc.respondOn('bin-manager.call-manager.request', (req) => {
    seen.push(`call-manager ${String(req.method)} ${String(req.uri)}`);
    return req.method === 'GET' ? ok({ status: 'progressing' }) : ok({});
  });
});

afterAll(async () => {
  await rpc?.close();
  await t?.stop();
  await openai?.close();
  await services?.dropAll();
});

/** Creates an ai_call whose aicall references a call; returns the create's status and the requests it made. */
async function createAiCall(aiId: string): Promise<{ id: string; aicallId: string; status: number; requests: string[] }> {
  const id = randomUUID();
  const aicallId = randomUUID();
  aicalls.set(aicallId, aiId);
  const from = seen.length;
  const reply = await rpc.request(SHARED, {
    uri: '/v1/pipecatcalls',
    method: 'POST',
    data: { id, reference_type: 'ai_call', reference_id: aicallId, llm_type: 'openai.gpt-4o-mini', stt_type: '', tts_type: '' },
  });
  return { id, aicallId, status: (reply.json as { status_code: number }).status_code, requests: seen.slice(from) };
}

/** Connects the call's media and returns the Authorization header of its first LLM request. */
async function firstLlmKey(id: string): Promise<string> {
  const from = openai.requests.length;
  const client = await AudiosocketClient.connect({ host: '127.0.0.1', port: t.app.addresses.audiosocket.port, uuid: id });
  try {
    await waitUntil('the greeting LLM request', () => openai.requests.length > from);
    return String(openai.requests[from]?.headers.authorization);
  } finally {
    client.hangup();
    await client.closed;
    await waitUntil('the end', () => t.app.calls.session(id) === undefined);
  }
}

describe('an ai_call create as ai-manager sends it', () => {
  it('asks only GET /v1/aicalls then POST /v1/external-medias; the AI key comes at pipeline start', async () => {
    const aiId = randomUUID();
    const { id, aicallId, status, requests } = await createAiCall(aiId);
    expect(status).toBe(200);
    expect(requests).toEqual([`ai-manager GET /v1/aicalls/${aicallId}`, 'call-manager POST /v1/external-medias']);
    // Nothing more until the media connects (Asterisk dialled by call-manager).
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.filter((s) => s.includes(`/v1/ais/${aiId}`))).toEqual([]);
    expect(await firstLlmKey(id)).toBe(`Bearer ${AI_KEY}`);
    expect(seen.filter((s) => s.includes(`/v1/ais/${aiId}`))).toEqual([`ai-manager GET /v1/ais/${aiId}`]);
  });

  it('a failing GET /v1/ais falls back to the instance key: the create succeeds and the bot talks', async () => {
    const aiId = randomUUID();
    failingAis.add(aiId);
    const { id, status } = await createAiCall(aiId);
    expect(status).toBe(200);
    expect(await firstLlmKey(id)).toBe(`Bearer ${INSTANCE_KEY}`);
    expect(seen).toContain(`ai-manager GET /v1/ais/${aiId}`);
  });
});
