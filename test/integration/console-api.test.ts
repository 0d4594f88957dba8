// The operator console's JSON API on a standalone daemon (SQLite, no broker): only as open as configured (token,
// no CORS, same-origin resources), clear 400s for bad parameters, and a call the LLM fails for twice — over the
// WebSocket media, against the local OpenAI fake — ends with llm_error, whose provider message (its secret
// redacted) the live summary and the past-calls listing both show, with the call's turn timeline kept after it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../fakes/openai-server.js';
import { testLogger } from '../helpers/services.js';
import { waitUntil } from '../helpers/wait.js';
import { WsTestClient, wsUrl } from '../helpers/ws-client.js';

const TOKEN = 'console-api-token';
const SECRET = 'sk-leakedkey0123456789';
let app: App;
let openai: FakeOpenAiServer;
let base: string;

beforeAll(async () => {
  openai = await startFakeOpenAiServer();
  const config = loadConfig({
    env: {
      AUDIOSOCKET_LISTEN_ADDRESS: '127.0.0.1:0',
      HTTP_LISTEN_ADDRESS: '127.0.0.1:0',
      PROMETHEUS_LISTEN_ADDRESS: '127.0.0.1:0',
      DATABASE_PATH: join(mkdtempSync(join(tmpdir(), 'console-api-')), 'calls.sqlite'),
      HTTP_AUTH_TOKEN: TOKEN,
      OPENAI_API_KEY: 'sk-test-openai-0123456789',
      OPENAI_BASE_URL: openai.baseUrl,
      LOG_LEVEL: 'silent',
    },
  });
  app = await App.start(config, testLogger(), { metrics: new Metrics({ defaultMetrics: false }) });
  base = `http://127.0.0.1:${app.addresses.http.port}`;
});

afterAll(async () => {
  await app?.close();
  await openai?.close();
});

async function api(path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, ...(init.headers as Record<string, string>) } });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

describe('console API', () => {
  it('answers only with the token, to its own origin, and refuses bad parameters clearly', async () => {
    for (const path of ['/api/calls', '/api/levels', '/api/headroom', '/api/past-calls', `/api/calls/${randomUUID()}/turns`]) {
      const anonymous = await fetch(`${base}${path}`, { headers: { origin: 'https://evil.example' } });
      expect(anonymous.status, path).toBe(401);
      const res = await api(path, { headers: { origin: 'https://evil.example' } });
      expect(res.headers.get('access-control-allow-origin'), path).toBeNull();
      expect(res.headers.get('cross-origin-resource-policy'), path).toBe('same-origin');
    }
    const bad = [
      ['/api/past-calls?limit=0', /limit/],
      ['/api/past-calls?limit=500', /limit/],
      ['/api/past-calls?customer_id=not-a-uuid', /customer_id must be a UUID/],
      ['/api/past-calls?before_id=00000000-0000-4000-8000-000000000001', /before_tm and before_id go together/],
      ['/api/past-calls?before_tm=yesterday&before_id=00000000-0000-4000-8000-000000000001', /before_tm must be a timestamp/],
      ['/api/calls/nope/turns', /UUID/],
    ] as const;
    for (const [path, message] of bad) {
      const res = await api(path);
      expect(res.status, path).toBe(400);
      expect(String(res.json.error), path).toMatch(message);
    }
    const unknown = await api(`/api/calls/${randomUUID()}/turns`);
    expect(unknown.status).toBe(404);
  });

  it('shows an llm_error call with its redacted provider message, live and in past calls, with its timeline', async () => {
    const message = `upstream refused key ${SECRET} via https://bot:hunter2@llm.example/v1`;
    openai.enqueue({ error: { status: 400, message } }, { error: { status: 400, message } });
    const id = randomUUID();
    const created = await api('/v1/pipecatcalls', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, reference_type: 'call', llm_type: 'openai.gpt-4o-mini', stt_type: 'sphinx', tts_type: 'espeak' }),
    });
    expect(created.status).toBe(200);
    const ws = await WsTestClient.connect(wsUrl(app.addresses.http.port, id), { authorization: `Bearer ${TOKEN}` });
    try {
      // The greeting's LLM run fails once: the call goes on, and the console shows why.
      let live: Record<string, unknown> | undefined;
      await waitUntil('the first provider error in the live summary', async () => {
        const calls = (await api('/api/calls')).json.calls as Array<Record<string, unknown>>;
        live = calls.find((c) => c.id === id);
        return live?.provider_error !== null && live?.provider_error !== undefined;
      });
      const liveError = live?.provider_error as Record<string, unknown>;
      expect(liveError).toMatchObject({ stage: 'llm', provider: 'openai.gpt-4o-mini' });
      expect(String(liveError.message)).toContain('upstream refused key');
      expect(JSON.stringify(live)).not.toContain(SECRET);
      expect(JSON.stringify(live)).not.toContain('hunter2');
      const levels = (await api('/api/levels')).json.levels as Record<string, unknown>;
      expect(Object.keys(levels)).toContain(id);

      // A second failure ends the call with llm_error.
      ws.sendJson({ label: 'rtvi-ai', type: 'send-text', id: 'm1', data: { content: 'hello?', options: { run_immediately: true, audio_response: true } } });
      await waitUntil('the call to end', () => app.calls.session(id) === undefined);
    } finally {
      await ws.close();
    }
    const past = await api(`/api/past-calls?id=${id}`);
    expect(past.status).toBe(200);
    const rows = past.json.calls as Array<Record<string, unknown>>;
    expect(rows.map((r) => r.id)).toEqual([id]);
    expect(rows[0]?.reason).toBe('llm_error');
    expect(rows[0]?.provider_error).toMatchObject({ stage: 'llm', provider: 'openai.gpt-4o-mini' });
    expect(JSON.stringify(past.json)).toContain('upstream refused key');
    expect(JSON.stringify(past.json)).not.toContain(SECRET);
    expect(JSON.stringify(past.json)).not.toContain('hunter2');
    expect(typeof rows[0]?.duration_seconds).toBe('number');
    // The turn timeline outlives the call (a text-only exchange has no voice turns: the list may be empty).
    const turns = await api(`/api/calls/${id}/turns`);
    expect(turns.status).toBe(200);
    expect(turns.json.live).toBe(false);
    expect(Array.isArray(turns.json.turns)).toBe(true);
    expect((await api(`/api/calls/${id}/turns?after=0`)).json.turns).toEqual(turns.json.turns);
    expect((await api(`/api/calls/${id}/turns?after=-1`)).status).toBe(400);
    // Unfiltered, newest first: this call heads the list.
    const all = await api('/api/past-calls?limit=1');
    expect((all.json.calls as Array<Record<string, unknown>>)[0]?.id).toBe(id);
  }, 30_000);

  it('samples headroom only once asked, and returns the samples newer than `since`', async () => {
    const first = await api('/api/headroom');
    expect(first.json.sample_ms).toBe(2000);
    let samples: Array<Record<string, unknown>> = [];
    await waitUntil('a headroom sample', async () => {
      samples = (await api('/api/headroom')).json.samples as Array<Record<string, unknown>>;
      return samples.length > 0;
    });
    const s = samples[0] as Record<string, unknown>;
    expect(Object.keys(s).sort()).toEqual(['admitted', 'calls', 'clock_late_p99_ms', 'core_busy', 'loop_delay_p99_ms', 'process_cpu', 'refused', 't']);
    expect((s.core_busy as number[]).length).toBeGreaterThan(0);
    expect(s.admitted).toBeGreaterThanOrEqual(1); // the call above was admitted
    const newer = await api(`/api/headroom?since=${String(samples.at(-1)?.t)}`);
    expect((newer.json.samples as unknown[]).every((x) => (x as { t: number }).t > (samples.at(-1)?.t as number))).toBe(true);
  }, 20_000);
});
