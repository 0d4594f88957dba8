// The daemon's RPC surface end to end: an independent Go-style RPC client on the real RabbitMQ drives every
// route of a running App; rows are checked in MySQL and Redis directly, events on the fanout exchange.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { randomUUID } from 'node:crypto';
import { RpcTestClient, type EventSubscription } from '../helpers/rpc-test-client.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { testRedisConfig } from '../helpers/services.js';
import { waitUntil } from '../helpers/wait.js';

const SHARED = 'bin-manager.pipecat-manager.request';
const HOST = 'bin-manager.pipecat-manager.request.127.0.0.1';
const NIL = '00000000-0000-0000-0000-000000000000';
const TS = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$/;

let services: TestServices;
let t: TestApp;
let rpc: RpcTestClient;
let events: EventSubscription;

beforeAll(async () => {
  services = await createTestServices();
  t = await startTestApp(services);
  rpc = await RpcTestClient.connect(services.rabbitUrl);
  events = await rpc.subscribeEvents();
});

afterAll(async () => {
  await events?.close();
  await rpc?.close();
  await t?.stop();
  await services?.dropAll();
});

function eventsOf(type: string, id: string): Array<{ type: string; data: Record<string, unknown> }> {
  return (events.events as Array<{ type: string; data: Record<string, unknown> }>).filter(
    (e) => e.type === type && e.data.id === id,
  );
}

async function waitEvent(type: string, id: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
  await waitUntil(`a ${type} event for ${id}`, () => eventsOf(type, id).length > 0, timeoutMs);
  return eventsOf(type, id)[0] ?? {};
}

describe('create and get', () => {
  const id = randomUUID();
  const customer = randomUUID();
  const reference = randomUUID();

  it('creates a call and replies with the Go-compatible Pipecatcall, byte for byte', async () => {
    const reply = await rpc.request(SHARED, {
      uri: '/v1/pipecatcalls',
      method: 'POST',
      data: {
        id: id.toUpperCase(),
        customer_id: customer,
        reference_type: 'call',
        reference_id: `{${reference}}`,
        llm_type: 'local.echo',
        llm_messages: [{ role: 'system', content: 'Be brief & <polite>.' }],
        stt_type: 'sphinx',
        tts_type: 'espeak',
        tts_voice_id: 'en-us',
        unknown_key: 'ignored',
      },
    });
    const body = reply.json as { status_code: number; data: { tm_create: string } };
    expect(body.status_code).toBe(200);
    const tm = body.data.tm_create;
    expect(tm).toMatch(TS);
    const golden =
      `{"status_code":200,"data_type":"application/json","data":{"id":"${id}","customer_id":"${customer}",` +
      `"activeflow_id":"${NIL}","reference_type":"call","reference_id":"${reference}","host_id":"127.0.0.1",` +
      `"llm_type":"local.echo","llm_messages":[{"content":"Be brief \\u0026 \\u003cpolite\\u003e.","role":"system"}],` +
      `"stt_type":"sphinx","tts_type":"espeak","tts_voice_id":"en-us","tm_create":"${tm}",` +
      `"tm_update":"9999-01-01 00:00:00.000000","tm_delete":"9999-01-01 00:00:00.000000"}}`;
    expect(reply.raw.toString('utf8')).toBe(golden);
    expect(reply.properties.contentType).toBe('text/plain');
  });

  it('stores the row in MySQL with 16-byte ids and the sentinel timestamps', async () => {
    const db = services.database.config;
    const conn = await createConnection({ host: db.host, port: db.port, user: db.user, database: db.database, dateStrings: true });
    try {
      const [rows] = await conn.query(
        'SELECT LENGTH(id) AS len, HEX(id) AS hex, HEX(customer_id) AS customer, HEX(activeflow_id) AS af, host_id, tm_update, tm_delete FROM pipecat_pipecatcalls WHERE id = UNHEX(?)',
        [id.replace(/-/g, '')],
      );
      const row = (rows as Array<Record<string, unknown>>)[0];
      expect(row).toBeDefined();
      expect(row?.len).toBe(16);
      expect(String(row?.hex).toLowerCase()).toBe(id.replace(/-/g, ''));
      expect(String(row?.customer).toLowerCase()).toBe(customer.replace(/-/g, ''));
      expect(row?.af).toBe('0'.repeat(32));
      expect(row?.host_id).toBe('127.0.0.1');
      expect(row?.tm_update).toBe('9999-01-01 00:00:00.000000');
      expect(row?.tm_delete).toBe('9999-01-01 00:00:00.000000');
    } finally {
      await conn.end();
    }
  });

  it('caches the same JSON in Redis (DB index, 24 h TTL)', async () => {
    const cfg = testRedisConfig();
    const redis = new Redis({ host: cfg.host, port: cfg.port, db: cfg.database });
    try {
      const cached = await redis.get(`pipecatcall:${id}`);
      const ttl = await redis.ttl(`pipecatcall:${id}`);
      const reply = await rpc.request(SHARED, { uri: `/v1/pipecatcalls/${id}`, method: 'GET' });
      const raw = reply.raw.toString('utf8');
      expect(raw.startsWith('{"status_code":200,"data_type":"application/json","data":')).toBe(true);
      expect(cached).toBe(raw.slice(raw.indexOf('"data":') + 7, -1));
      expect(ttl).toBeGreaterThan(86_000);
      expect(ttl).toBeLessThanOrEqual(86_400);
    } finally {
      redis.disconnect();
    }
  });

  it('publishes pipecatcall_created with the row', async () => {
    const ev = await waitEvent('pipecatcall_created', id);
    expect(ev.publisher).toBe('pipecat-manager');
    expect(ev.data_type).toBe('application/json');
    const raw = events.raw.map((b) => b.toString('utf8')).find((s) => s.includes('"pipecatcall_created"') && s.includes(id));
    expect(raw?.startsWith('{"type":"pipecatcall_created","publisher":"pipecat-manager","data_type":"application/json","data":{"id":')).toBe(true);
  });

  it('answers a duplicate create with 409 and the reason', async () => {
    const reply = await rpc.request(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data: { id, reference_type: 'call' } });
    expect(reply.raw.toString('utf8')).toBe(
      `{"status_code":409,"data_type":"application/json","data":{"message":"pipecatcall ${id} already exists"}}`,
    );
  });

  it('lists the live call of this host', async () => {
    const reply = await rpc.request(SHARED, { uri: '/v1/pipecatcalls?host_id=127.0.0.1', method: 'GET' });
    const body = reply.json as { status_code: number; data: { result: Array<{ id: string }> } };
    expect(body.status_code).toBe(200);
    expect(body.data.result.map((r) => r.id)).toContain(id);
    const other = await rpc.request(SHARED, { uri: '/v1/pipecatcalls?host_id=10.9.9.9', method: 'GET' });
    expect((other.json as { data: { result: unknown[] } }).data.result).toEqual([]);
  });

  it('accepts a message for the live call and returns a Message with a new id', async () => {
    const reply = await rpc.request(HOST, {
      uri: '/v1/messages',
      method: 'POST',
      data: { pipecatcall_id: id, message_id: 'm-1', message_text: 'hello there', run_immediately: true, audio_response: false },
    });
    const body = reply.json as { status_code: number; data: Record<string, string> };
    expect(body.status_code).toBe(200);
    expect(body.data.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.data.id).not.toBe(id);
    expect(body.data).toMatchObject({
      customer_id: customer,
      pipecatcall_id: id,
      pipecatcall_reference_type: 'call',
      pipecatcall_reference_id: reference,
      text: 'hello there',
    });
    expect(Object.keys(body.data)).toEqual([
      'id',
      'customer_id',
      'pipecatcall_id',
      'pipecatcall_reference_type',
      'pipecatcall_reference_id',
      'text',
    ]);
  });

  it('stops the call: row terminated, event published, GET still 200, a second stop changes nothing', async () => {
    const reply = await rpc.request(HOST, { uri: `/v1/pipecatcalls/${id}/stop`, method: 'POST' });
    const body = reply.json as { status_code: number; data: { tm_delete: string; tm_update: string } };
    expect(body.status_code).toBe(200);
    expect(body.data.tm_delete).toMatch(TS);
    expect(body.data.tm_delete.startsWith('9999')).toBe(false);
    expect(body.data.tm_update).toBe(body.data.tm_delete);
    const ev = await waitEvent('pipecatcall_terminated', id);
    expect((ev.data as { tm_delete: string }).tm_delete).toBe(body.data.tm_delete);
    expect(t.app.calls.session(id)).toBeUndefined();

    const again = await rpc.request(HOST, { uri: `/v1/pipecatcalls/${id}/stop`, method: 'POST' });
    expect((again.json as { data: { tm_delete: string } }).data.tm_delete).toBe(body.data.tm_delete);
    const get = await rpc.request(SHARED, { uri: `/v1/pipecatcalls/${id}`, method: 'GET' });
    expect((get.json as { status_code: number }).status_code).toBe(200);
    expect(eventsOf('pipecatcall_terminated', id)).toHaveLength(1);
    const msg = await rpc.request(HOST, { uri: '/v1/messages', method: 'POST', data: { pipecatcall_id: id, message_text: 'late' } });
    expect(msg.raw.toString('utf8')).toBe('{"status_code":404,"data_type":""}');
  });
});

describe('ping and routing', () => {
  it('pings on the per-host queue without touching the database', async () => {
    const reply = await rpc.request(HOST, { uri: '/v1/ping', method: 'GET' });
    const raw = reply.raw.toString('utf8');
    expect(raw).toMatch(
      /^\{"status_code":200,"data_type":"application\/json","data":\{"host_id":"127\.0\.0\.1","timestamp":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z"\}\}$/,
    );
  });

  it('answers every route on both queues', async () => {
    const a = await rpc.request(SHARED, { uri: '/v1/ping', method: 'GET' });
    expect((a.json as { status_code: number }).status_code).toBe(200);
  });

  it('copies a correlation_id when the caller sets one', async () => {
    const reply = await rpc.request(HOST, { uri: '/v1/ping', method: 'GET' }, { correlationId: 'corr-42' });
    expect(reply.properties.correlationId).toBe('corr-42');
  });

  it('unknown route → 404 with no body', async () => {
    const reply = await rpc.request(SHARED, { uri: '/v1/nothing-here', method: 'GET' });
    expect(reply.raw.toString('utf8')).toBe('{"status_code":404,"data_type":""}');
  });

  it('a route with the wrong method → 404', async () => {
    const reply = await rpc.request(SHARED, { uri: '/v1/ping', method: 'DELETE' });
    expect(reply.raw.toString('utf8')).toBe('{"status_code":404,"data_type":""}');
  });

  it('an uppercase id in the URI does not match → 404', async () => {
    const reply = await rpc.request(SHARED, { uri: `/v1/pipecatcalls/${randomUUID().toUpperCase()}`, method: 'GET' });
    expect(reply.raw.toString('utf8')).toBe('{"status_code":404,"data_type":""}');
  });

  it('an unknown id → 404', async () => {
    const reply = await rpc.request(SHARED, { uri: `/v1/pipecatcalls/${randomUUID()}`, method: 'GET' });
    expect(reply.raw.toString('utf8')).toBe('{"status_code":404,"data_type":""}');
  });

  it('malformed JSON → 400 with a reason', async () => {
    const reply = await rpc.request(SHARED, Buffer.from('{"uri": "/v1/ping", "method": '));
    const body = reply.json as { status_code: number; data: { message: string } };
    expect(body.status_code).toBe(400);
    expect(body.data.message).toMatch(/JSON/);
  });

  it('uri that is not a string → 400', async () => {
    const reply = await rpc.request(SHARED, Buffer.from('{"uri":42,"method":"GET","publisher":"x","data_type":""}'));
    expect((reply.json as { status_code: number }).status_code).toBe(400);
  });

  it('an empty-string UUID in a body → 400 and no row', async () => {
    const reply = await rpc.request(SHARED, {
      uri: '/v1/pipecatcalls',
      method: 'POST',
      data: { id: randomUUID(), customer_id: '', reference_type: 'call' },
    });
    const body = reply.json as { status_code: number; data: { message: string } };
    expect(body.status_code).toBe(400);
    expect(body.data.message).toMatch(/customer_id/);
  });

  it('an unsupported provider → 400, no row and no event', async () => {
    const id = randomUUID();
    const reply = await rpc.request(SHARED, {
      uri: '/v1/pipecatcalls',
      method: 'POST',
      data: { id, reference_type: 'call', tts_type: 'playht' },
    });
    const body = reply.json as { status_code: number; data: { message: string } };
    expect(body.status_code).toBe(400);
    expect(body.data.message).toBe('tts_type playht is not supported (supported: cartesia, elevenlabs, espeak, openai, deepgram)');
    const get = await rpc.request(SHARED, { uri: `/v1/pipecatcalls/${id}`, method: 'GET' });
    expect((get.json as { status_code: number }).status_code).toBe(404);
    expect(eventsOf('pipecatcall_created', id)).toHaveLength(0);
  });

  it('an unknown reference_type or llm vendor → 400', async () => {
    for (const data of [
      { id: randomUUID(), reference_type: 'conference' },
      { id: randomUUID(), reference_type: 'call', llm_type: 'acme.gpt' },
      { id: randomUUID(), reference_type: 'call', llm_messages: 'hello' },
      { id: randomUUID(), reference_type: 'call', vad_config: { confidence: 7 } },
    ]) {
      const reply = await rpc.request(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data });
      expect((reply.json as { status_code: number }).status_code, JSON.stringify(data)).toBe(400);
    }
  });

  it('a request without reply_to is handled and not answered', async () => {
    const id = randomUUID();
    await rpc.sendWithoutReplyTo(SHARED, { uri: '/v1/pipecatcalls', method: 'POST', data: { id, reference_type: 'call' } });
    await waitEvent('pipecatcall_created', id);
    const count = await rpc.withChannel(async (ch) => (await ch.checkQueue(SHARED)).messageCount);
    expect(count).toBe(0);
    await rpc.request(HOST, { uri: `/v1/pipecatcalls/${id}/stop`, method: 'POST' });
  });

  it('counts requests in receive_request_process_time with the route label', async () => {
    const text = await t.metrics.registry.getSingleMetricAsString('pipecat_manager_receive_request_process_time');
    expect(text).toMatch(/type="\/v1\/pipecatcalls\/<pipecatcall-id>",method="GET"/);
    expect(text).toMatch(/type="notfound"/);
    expect(text).toMatch(/type="invalid"/);
  });
});

describe('ai_call references', () => {
  it('starts a text-only session when the aicall is a conversation, and takes messages', async () => {
    const aicallId = randomUUID();
    const aiId = randomUUID();
    const uris: string[] = [];
    await rpc.respondOn('bin-manager.ai-manager.request', (req) => {
      const uri = String(req.uri);
      uris.push(uri);
      if (uri === `/v1/aicalls/${aicallId}`) {
        return Buffer.from(JSON.stringify({ status_code: 200, data_type: 'application/json', data: { id: aicallId, ai_id: aiId, reference_type: 'conversation', reference_id: randomUUID() } }));
      }
      if (uri === `/v1/ais/${aiId}`) {
        return Buffer.from(JSON.stringify({ status_code: 200, data_type: 'application/json', data: { id: aiId, engine_key: 'sk-test-planted-secret-123' } }));
      }
      return Buffer.from('{"status_code":404,"data_type":""}');
    });
    const id = randomUUID();
    const reply = await rpc.request(SHARED, {
      uri: '/v1/pipecatcalls',
      method: 'POST',
      data: { id, reference_type: 'ai_call', reference_id: aicallId, llm_type: 'openai.gpt-4o-mini' },
    });
    expect((reply.json as { status_code: number }).status_code).toBe(200);
    expect(reply.raw.toString('utf8')).not.toContain('sk-test');
    await waitEvent('pipecatcall_initialized', id);
    const call = t.app.calls.session(id);
    expect(call?.aicall?.aiId).toBe(aiId);
    // The AI's key is asked for when the pipeline starts, after the aicall (issue 11 item 5).
    await waitUntil('the AI key request', () => uris.includes(`/v1/ais/${aiId}`), 2000);
    expect(uris.slice(0, 2)).toEqual([`/v1/aicalls/${aicallId}`, `/v1/ais/${aiId}`]);
    expect(call?.transport).toBe('none');
    const msg = await rpc.request(HOST, { uri: '/v1/messages', method: 'POST', data: { pipecatcall_id: id, message_text: 'hi' } });
    expect((msg.json as { status_code: number }).status_code).toBe(200);
    await rpc.request(HOST, { uri: `/v1/pipecatcalls/${id}/stop`, method: 'POST' });
    await waitEvent('pipecatcall_terminated', id);
  });

  it('a failing ai-manager makes the create a 500; the row is terminated and the event published', async () => {
    const id = randomUUID();
    const reply = await rpc.request(
      SHARED,
      { uri: '/v1/pipecatcalls', method: 'POST', data: { id, reference_type: 'ai_call', reference_id: randomUUID() } },
      { timeoutMs: 8000 },
    );
    const body = reply.json as { status_code: number; data: { message: string } };
    expect(body.status_code).toBe(500);
    expect(body.data.message).toMatch(/404|ai-manager/);
    const ended = await waitEvent('pipecatcall_terminated', id);
    expect(String((ended.data as { tm_delete: string }).tm_delete).startsWith('9999')).toBe(false);
    expect(t.app.calls.session(id)).toBeUndefined();
  });
});
