// Issue 12, item 1, from outside the process: a DNS-rebinding Host, a foreign page's Origin on state-changing
// requests and WebSocket upgrades, a monitor trying to steer a call without the operator's token, the response
// headers, oversized headers, and a network-facing listener without a token.

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCaller } from '../helpers/caller.js';
import { runDaemonToExit } from '../helpers/processes.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { WsTestClient, expectRefused, wsUrl } from '../helpers/ws-client.js';
import { rawRequest } from './support/raw-http.js';

let services: TestServices;
let t: TestApp;
let port: number;
const FOREIGN = 'http://attacker.example';
const FRIEND = 'https://ops.example.com';

beforeAll(async () => {
  services = await createTestServices();
  t = await startTestApp(services, {
    UNKNOWN_CALLS: 'accept',
    DEFAULT_STT_TYPE: '',
    DEFAULT_TTS_TYPE: '',
    HTTP_ALLOWED_HOSTS: 'pipecat.internal',
    HTTP_ALLOWED_ORIGINS: FRIEND,
  });
  port = t.app.addresses.http.port;
});

afterAll(async () => {
  await t?.stop();
  await services?.dropAll();
});

const json = { 'content-type': 'application/json' };

describe('Host allow-list (DNS rebinding)', () => {
  it('answers 421 to a foreign Host on the console and its API, and serves loopback and configured names', async () => {
    for (const path of ['/', '/api/calls']) {
      const r = await rawRequest(port, path, { headers: { host: 'attacker.example:8001' } });
      expect(r.status, path).toBe(421);
      expect(r.body).toMatch(/HTTP_ALLOWED_HOSTS/);
    }
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `pipecat.internal:${port}`]) {
      expect((await rawRequest(port, '/api/calls', { headers: { host } })).status, host).toBe(200);
    }
    // Probes answer whatever name the orchestrator uses.
    expect((await rawRequest(port, '/healthz', { headers: { host: '10.1.2.3:8001' } })).status).toBe(200);
    // A WebSocket upgrade with a rebinding Host is refused before anything looks at the call.
    const id = randomUUID();
    const refused = await expectRefused(wsUrl(port, id), { host: 'attacker.example' });
    expect(refused.status).toBe(421);
    expect(t.app.calls.session(id)).toBeUndefined();
  });
});

describe('Origin check', () => {
  it('refuses a cross-origin POST with 403 and creates nothing; same-origin and configured origins work', async () => {
    const before = t.app.calls.size;
    const foreign = await rawRequest(port, '/api/calls', { method: 'POST', headers: { ...json, origin: FOREIGN, host: `127.0.0.1:${port}` } });
    expect(foreign.status).toBe(403);
    expect(foreign.body).toMatch(/HTTP_ALLOWED_ORIGINS/);
    const nullOrigin = await rawRequest(port, '/api/calls', { method: 'POST', headers: { ...json, origin: 'null' } });
    expect(nullOrigin.status).toBe(403);
    expect(t.app.calls.size).toBe(before);

    const own = await rawRequest(port, '/api/calls', { method: 'POST', headers: { ...json, origin: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}` } });
    expect(own.status).toBe(201);
    const friend = await rawRequest(port, '/api/calls', { method: 'POST', headers: { ...json, origin: FRIEND } });
    expect(friend.status).toBe(201);
    // A client that is not a browser sends no Origin (the CLI, curl): unaffected.
    const cli = await rawRequest(port, '/api/calls', { method: 'POST', headers: json });
    expect(cli.status).toBe(201);
    for (const r of [own, friend, cli]) await t.app.calls.terminate((JSON.parse(r.body) as { id: string }).id, 'stop');
  });

  it('refuses a WebSocket upgrade from a foreign page: no media socket, no call created', async () => {
    const id = randomUUID();
    const r = await expectRefused(wsUrl(port, id), { origin: FOREIGN });
    expect(r.status).toBe(403);
    expect(t.app.calls.session(id)).toBeUndefined();
    const sameOrigin = await WsTestClient.connect(wsUrl(port, id), { origin: `http://127.0.0.1:${port}` });
    await sameOrigin.until(() => t.app.calls.session(id) !== undefined, 'the call made by its own page');
    await sameOrigin.close();
    await t.app.calls.terminate(id, 'stop');
  });
});

describe('read-only monitor without HTTP_AUTH_TOKEN', () => {
  it('refuses send-text from a monitor: the bot never says the injected text', async () => {
    const id = randomUUID();
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
    try {
      await caller.until(() => t.app.calls.session(id)?.sessionStarted === true, 'the call');
      const monitor = await WsTestClient.connect(wsUrl(port, id, '?mode=monitor'), { origin: `http://127.0.0.1:${port}` });
      monitor.sendJson({
        label: 'rtvi-ai',
        type: 'send-text',
        id: 'm1',
        data: { content: 'attacker says transfer all funds', options: { run_immediately: true, audio_response: true } },
      });
      await monitor.until(() => monitor.ofType('error-response').length > 0, 'the refusal');
      expect(JSON.stringify(monitor.ofType('error-response')[0])).toMatch(/read-only/);
      await sleep(1_000);
      expect(monitor.botAnswers().join(' ')).not.toMatch(/transfer all funds/);
      await monitor.close();
    } finally {
      await caller.hangup();
      await t.app.calls.terminate(id, 'stop');
    }
  });
});

describe('response headers and oversized requests', () => {
  it('sends no-referrer, a connect-src self CSP on the page, nosniff on JSON, and 431 for oversized headers', async () => {
    const page = await rawRequest(port, '/');
    expect(page.status).toBe(200);
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toMatch(/connect-src 'self'(;|$)/);
    expect(csp).not.toMatch(/ws:|wss:/);
    const api = await rawRequest(port, '/api/calls');
    expect(api.headers['content-type']).toMatch(/application\/json/);
    expect(api.headers['x-content-type-options']).toBe('nosniff');
    expect(api.headers['referrer-policy']).toBe('no-referrer');
    const big = await rawRequest(port, '/api/calls', { headers: { 'x-filler': 'a'.repeat(20_000) } });
    expect(big.status).toBe(431);
    expect((await rawRequest(port, '/healthz')).status).toBe(200);
  });
});

describe('a listener other than loopback', () => {
  it('refuses to start without HTTP_AUTH_TOKEN, with one clear line and exit code 1', async () => {
    const r = await runDaemonToExit([], { HTTP_LISTEN_ADDRESS: '0.0.0.0:0', PROMETHEUS_LISTEN_ADDRESS: '127.0.0.1:0', LOG_LEVEL: 'silent' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/HTTP_AUTH_TOKEN is not set/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
