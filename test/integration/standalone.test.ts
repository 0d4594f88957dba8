// Standalone mode end to end: no DATABASE_DSN, REDIS_ADDRESS or RABBITMQ_ADDRESS. The offline bot answers a real
// Audiosocket call; the calls are controlled over HTTP; the row lives in the SQLite file; events reach a webhook.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ECHO_GREETING } from '../../src/providers/llm/echo.js';
import { uuidToBytes } from '../../src/model/uuid.js';
import { TestCaller, loadPrompt } from '../helpers/caller.js';
import { testLogger } from '../helpers/services.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const TOKEN = 'standalone-test-token';
let dir: string;
let app: App;
let hook: WebhookReceiver;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'standalone-'));
  const grammar = join(dir, 'calls.gram');
  writeFileSync(grammar, '#JSGF V1.0;\ngrammar calls;\npublic <phrase> = hello world | thank you | goodbye;\n');
  hook = await WebhookReceiver.start();
  // Only what a newcomer's machine has: no address of any service.
  const config = loadConfig({
    env: {
      AUDIOSOCKET_LISTEN_ADDRESS: '127.0.0.1:0',
      HTTP_LISTEN_ADDRESS: '127.0.0.1:0',
      PROMETHEUS_LISTEN_ADDRESS: '127.0.0.1:0',
      DATABASE_PATH: join(dir, 'data', 'calls.sqlite'),
      EVENTS_WEBHOOK_URL: hook.url,
      HTTP_AUTH_TOKEN: TOKEN,
      SPHINX_JSGF: grammar,
      LOG_LEVEL: 'silent',
    },
  });
  app = await App.start(config, testLogger(), { metrics: new Metrics({ defaultMetrics: false }) });
  base = `http://127.0.0.1:${app.addresses.http.port}`;
});

afterAll(async () => {
  await app?.close();
  await hook?.close();
});

const auth = { authorization: `Bearer ${TOKEN}` };

async function control(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown; text: string }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text), text };
}

function sqliteRow(id: string): Record<string, unknown> | undefined {
  const db = new Database(join(dir, 'data', 'calls.sqlite'), { readonly: true });
  try {
    return db.prepare('SELECT host_id, stt_type, tts_type, tm_delete FROM pipecat_pipecatcalls WHERE id = ?').get(uuidToBytes(id)) as
      | Record<string, unknown>
      | undefined;
  } finally {
    db.close();
  }
}

describe('standalone mode (no MySQL, Redis or RabbitMQ)', () => {
  it('says which part runs in which mode', async () => {
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: 'ready',
      checks: { sqlite: 'ok', admission: 'ok' },
      modes: { database: `sqlite ${join(dir, 'data', 'calls.sqlite')}`, cache: 'none', rpc: 'http', events: 'webhook' },
    });
  });

  it('answers an Audiosocket call with the offline bot; GET/stop over HTTP; the row in SQLite; webhook events', async () => {
    const id = randomUUID();
    const caller = await TestCaller.dial(app.addresses.audiosocket.port, id, 8000);
    try {
      await caller.until(() => caller.voiced().length > 10, 'the greeting', 15_000);
      await caller.until(() => {
        const v = caller.voiced();
        const last = v[v.length - 1];
        return last !== undefined && performance.now() - last.at > 700;
      }, 'the end of the greeting', 15_000);
      const speechEnd = performance.now();
      await caller.say(await loadPrompt('hello-world'));
      const botLlm = (): string[] => hook.of(id).filter((e) => e.type === 'message_bot_llm').map((e) => String(e.data.text));
      await hook.until(() => botLlm().length >= 2, 'the answer on the webhook', 20_000);
      await caller.until(() => caller.voiced(speechEnd).length > 30, 'the spoken answer', 10_000);
      expect(botLlm()).toEqual([ECHO_GREETING, 'You said: hello world.']);

      const got = await control('GET', `/v1/pipecatcalls/${id}`);
      expect(got.status).toBe(200);
      expect(got.json).toMatchObject({ id, host_id: '127.0.0.1', stt_type: 'sphinx', tts_type: 'espeak', tm_delete: '9999-01-01 00:00:00.000000' });
      const list = await control('GET', '/v1/pipecatcalls?host_id=127.0.0.1');
      expect((list.json as { result: Array<{ id: string }> }).result.map((r) => r.id)).toContain(id);
      expect(sqliteRow(id)).toMatchObject({ host_id: '127.0.0.1', stt_type: 'sphinx', tm_delete: '9999-01-01 00:00:00.000000' });

      const stopped = await control('POST', `/v1/pipecatcalls/${id}/stop`);
      expect(stopped.status).toBe(200);
      const ended = (stopped.json as { tm_delete: string }).tm_delete;
      expect(ended).not.toBe('9999-01-01 00:00:00.000000');
      expect(sqliteRow(id)?.tm_delete).toBe(ended);

      await hook.until(() => hook.of(id).some((e) => e.type === 'pipecatcall_terminated'), 'pipecatcall_terminated');
      const types = hook.of(id).map((e) => e.type);
      expect(types[0]).toBe('pipecatcall_created');
      expect(types[1]).toBe('pipecatcall_initialized');
      expect(types).toContain('message_user_transcription');
      expect(types[types.length - 1]).toBe('pipecatcall_terminated');
      // The envelope of SPEC §7.1, byte for byte as on the broker.
      const created = hook.bodies.find((b) => b.includes(id) && b.includes('pipecatcall_created')) ?? '';
      expect(created.startsWith('{"type":"pipecatcall_created","publisher":"pipecat-manager","data_type":"application/json","data":{"id":')).toBe(true);
    } finally {
      await caller.hangup();
    }
  }, 60_000);

  it('serves the RPC routes over HTTP with the RPC status codes, behind HTTP_AUTH_TOKEN', async () => {
    const id = randomUUID();
    const created = await control('POST', '/v1/pipecatcalls', { id, reference_type: 'call', llm_type: 'local.echo' });
    expect(created.status).toBe(200);
    expect(created.text.startsWith(`{"id":"${id}","customer_id":"00000000-0000-0000-0000-000000000000"`)).toBe(true);
    expect((await control('POST', '/v1/pipecatcalls', { id, reference_type: 'call' })).status).toBe(409);
    expect((await control('POST', '/v1/pipecatcalls', { id: 'nope' })).status).toBe(400);
    const missing = await control('GET', `/v1/pipecatcalls/${randomUUID()}`);
    expect([missing.status, missing.text]).toEqual([404, '']);
    expect((await control('GET', '/v1/nothing-here')).status).toBe(404);
    const ping = await control('GET', '/v1/ping');
    expect(ping.json).toMatchObject({ host_id: '127.0.0.1' });
    const msg = await control('POST', '/v1/messages', { pipecatcall_id: randomUUID(), message_text: 'hi' });
    expect(msg.status).toBe(404);
    const badJson = await fetch(`${base}/v1/pipecatcalls`, { method: 'POST', headers: auth, body: '{not json' });
    expect(badJson.status).toBe(400);
    expect(await badJson.json()).toEqual({ message: 'request body is not valid JSON' });

    const anonymous = await fetch(`${base}/v1/pipecatcalls/${id}`);
    expect(anonymous.status).toBe(401);
    const wrong = await fetch(`${base}/v1/pipecatcalls/${id}`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const byQuery = await fetch(`${base}/v1/pipecatcalls/${id}?token=${TOKEN}`);
    expect(byQuery.status).toBe(200);
    const foreignPage = await fetch(`${base}/v1/pipecatcalls/${id}/stop`, {
      method: 'POST',
      headers: { ...auth, origin: 'https://evil.example' },
    });
    expect(foreignPage.status).toBe(403);
    const samePage = await fetch(`${base}/v1/pipecatcalls/${id}`, { headers: { ...auth, origin: base } });
    expect(samePage.status).toBe(200);

    expect((await control('POST', `/v1/pipecatcalls/${id}/stop`)).status).toBe(200);
    expect(sqliteRow(id)?.tm_delete).not.toBe('9999-01-01 00:00:00.000000');
    const huge = await fetch(`${base}/v1/pipecatcalls`, { method: 'POST', headers: auth, body: 'x'.repeat(2 * 1024 * 1024) });
    expect(huge.status).toBe(413);
  });
});
