// The WebSocket endpoint (SPEC §9) on a real daemon with the offline providers: a protobuf client as the call's
// media, a monitor of an Audiosocket call, malformed input, the console API and the access rules.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ECHO_GREETING } from '../../src/providers/llm/echo.js';
import { TestCaller, loadPrompt } from '../helpers/caller.js';
import { createTestServices, startTestApp, type TestApp, type TestServices } from '../helpers/test-app.js';
import { WsTestClient, expectRefused, wsUrl } from '../helpers/ws-client.js';

let services: TestServices;
let authServices: TestServices;
let t: TestApp;
let authed: TestApp;
const TOKEN = 'ws-test-secret';

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jsgf-'));
  const grammar = join(dir, 'calls.gram');
  writeFileSync(grammar, '#JSGF V1.0;\ngrammar calls;\npublic <phrase> = hello world | thank you | goodbye | weasels have eaten our phone system;\n');
  [services, authServices] = await Promise.all([createTestServices(), createTestServices()]);
  [t, authed] = await Promise.all([
    startTestApp(services, { SPHINX_JSGF: grammar }),
    startTestApp(authServices, { SPHINX_JSGF: grammar, HTTP_AUTH_TOKEN: TOKEN, UNKNOWN_CALLS: 'reject' }),
  ]);
});

afterAll(async () => {
  await Promise.allSettled([t?.stop(), authed?.stop()]);
  await Promise.allSettled([services?.dropAll(), authServices?.dropAll()]);
});

const port = (a: TestApp): number => a.app.addresses.http.port;

async function gauge(a: TestApp, transport: string): Promise<number> {
  const { values } = await a.metrics.activeSessionsByTransport.get();
  return values.find((v) => v.labels.transport === transport)?.value ?? 0;
}

async function counter(a: TestApp, reason: string): Promise<number> {
  const { values } = await a.metrics.callsTerminatedTotal.get();
  return values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

describe('WebSocket media mode', () => {
  it('runs a whole conversation: paced 16 kHz greeting, 8 kHz speech resampled, "You said: hello world." spoken back', async () => {
    const id = randomUUID();
    const hangupsBefore = await counter(t, 'hangup');
    const client = await WsTestClient.connect(wsUrl(port(t), id));
    try {
      client.startStreaming(8000);
      await client.until(() => client.voiced().length > 10, 'the greeting audio');
      expect(t.app.calls.session(id)?.transport).toBe('websocket');
      expect(await gauge(t, 'websocket')).toBe(1);
      await client.until(() => {
        const last = client.voiced().at(-1);
        return last !== undefined && performance.now() - last.at > 700;
      }, 'the end of the greeting');
      expect(client.voiced().length).toBeGreaterThan(50);
      expect(client.botAnswers()[0]).toBe(ECHO_GREETING);

      await client.say(await loadPrompt('hello-world', 8000), 8000);
      const speechEnd = performance.now();
      await client.until(() => client.botAnswers().length >= 2, 'the answer', 15_000);
      await client.until(() => client.voiced(speechEnd).length > 30, 'the spoken answer', 10_000);

      expect(client.botAnswers()[1]).toBe('You said: hello world.');
      expect(client.texts('bot-transcription')).toContain('You said: hello world.');
      const finals = client.ofType('user-transcription').filter((m) => m.data?.['final'] === true);
      expect(finals.map((m) => m.data?.['text'])).toContain('hello world');
      expect(client.ofType('user-started-speaking').length).toBeGreaterThan(0);
      expect(client.ofType('bot-started-speaking').length).toBeGreaterThan(0);
      expect(client.messages.every((m) => m.label === 'rtvi-ai')).toBe(true);

      // Bot audio: 20 ms mono frames at 16 kHz whatever the client's rate, on a 20 ms grid, ids counting up.
      expect(new Set(client.audio.map((f) => `${f.sampleRate}/${f.numChannels}/${f.bytes}`))).toEqual(new Set(['16000/1/640']));
      expect(client.audio.map((f) => f.id)).toEqual(client.audio.map((_, i) => i + 1));
      const answer = client.voiced(speechEnd);
      const gaps = answer.slice(1).map((f, i) => f.at - (answer[i] as { at: number }).at);
      // Paced, not dumped (a dump arrives < 1 ms apart); sanity bounds only, the pacing figures are the bench's.
      expect(median(gaps)).toBeGreaterThan(5);
      expect(median(gaps)).toBeLessThan(100);
    } finally {
      await client.close();
    }
    // The socket closing is the caller hanging up: the call ends, nothing of it is left.
    await client.until(() => t.app.calls.session(id) === undefined, 'the call to end');
    expect(await counter(t, 'hangup')).toBe(hangupsBefore + 1);
    expect(await gauge(t, 'websocket')).toBe(0);
    expect(t.app.inspect().clockSinks).toBe(0);
  }, 40_000);

  it('takes send-text like POST /v1/messages, answers a missing id with error-response, survives malformed frames', async () => {
    const id = randomUUID();
    const client = await WsTestClient.connect(wsUrl(port(t), id));
    try {
      client.startStreaming(16000);
      await client.until(() => client.botAnswers().length >= 1, 'the greeting');
      const errors = (): string[] => client.ofType('error').map((m) => String(m.data?.['message']));

      client.sendRaw(Buffer.from([0xff, 0xff, 0xff]));
      client.sendRaw(Buffer.alloc(0));
      client.sendRaw('{"label":"rtvi-ai"}', false);
      client.sendFrame({ type: 'message', data: '{not json' });
      client.sendFrame({ type: 'message', data: '{"label":"other","type":"send-text"}' });
      client.sendFrame({ type: 'text', id: 1, name: '', text: 'hi' });
      client.sendAudio(Buffer.alloc(1280), 16000, 2);
      client.sendAudio(Buffer.alloc(320), 8000);
      client.sendAudio(Buffer.alloc(3), 16000);
      await client.until(() => errors().length >= 9, 'nine error messages');
      const e = errors();
      expect(e[0]).toMatch(/not a pipecat\.Frame/);
      expect(e[1]).toMatch(/no member of its oneof/);
      expect(e[2]).toMatch(/binary/);
      expect(e[3]).toMatch(/not valid JSON/);
      expect(e[4]).toMatch(/label/);
      expect(e[5]).toMatch(/text frames are not accepted/);
      expect(e[6]).toMatch(/mono/);
      expect(e[7]).toMatch(/must stay 16000 Hz/);
      expect(e[8]).toMatch(/s16le/);

      client.sendJson({ label: 'rtvi-ai', type: 'send-text', data: { content: 'no id here' } });
      await client.until(() => client.ofType('error-response').length >= 1, 'the error-response');
      const refused = client.ofType('error-response')[0];
      expect(refused?.id).toBeUndefined();
      expect(refused?.data?.['error']).toMatch(/needs an id/);

      client.sendJson({ label: 'rtvi-ai', type: 'client-ready', id: 'r1' });
      client.sendJson({
        label: 'rtvi-ai',
        type: 'send-text',
        id: 'm1',
        data: { content: 'testing one two three', options: { run_immediately: true, audio_response: false } },
      });
      await client.until(() => client.botAnswers().includes('You said: testing one two three.'), 'the send-text answer');
      expect(client.ofType('bot-ready')[0]).toMatchObject({ id: 'r1', data: { version: '1.0.0' } });
      expect(client.isOpen).toBe(true);
      expect(t.app.calls.session(id)?.isTerminating).toBe(false);
    } finally {
      await client.close();
    }
  }, 20_000);
});

describe('WebSocket protocol violations', () => {
  it('a message over the size limit closes that socket with 1009 (the call hangs up); the daemon carries on', async () => {
    const id = randomUUID();
    const client = await WsTestClient.connect(wsUrl(port(t), id));
    client.sendAudio(Buffer.alloc(640), 16000);
    await client.until(() => t.app.calls.session(id)?.transport === 'websocket', 'the call');
    client.sendRaw(Buffer.alloc(1024 * 1024 + 1));
    expect((await client.closed).code).toBe(1009);
    await client.until(() => t.app.calls.session(id) === undefined, 'the call to end');
    expect((await fetch(`http://127.0.0.1:${port(t)}/healthz`)).status).toBe(200);
    await client.close();
  });
});

describe('WebSocket monitor mode', () => {
  it('follows an Audiosocket call: its transcript notices arrive, audio from the monitor is refused', async () => {
    const id = randomUUID();
    const caller = await TestCaller.dial(t.app.addresses.audiosocket.port, id, 8000);
    let monitor: WsTestClient;
    try {
      await caller.until(() => t.app.calls.session(id)?.media !== null && t.app.calls.session(id) !== undefined, 'the call');
      monitor = await WsTestClient.connect(wsUrl(port(t), id));
      const m = monitor;
      expect(t.app.calls.session(id)?.listeners.size).toBe(1);
      expect(t.app.calls.session(id)?.transport).toBe('audiosocket');
      // Audio from a monitor goes nowhere: "hello world" pushed through it must not become a user turn.
      const prompt = await loadPrompt('hello-world', 8000);
      for (let off = 0; off < prompt.length; off += 320) m.sendAudio(prompt.subarray(off, off + 320), 8000);
      await m.until(() => m.ofType('error').length > 0, 'the refusal');
      expect(String(m.ofType('error')[0]?.data?.['message'])).toMatch(/read-only monitor/);

      await caller.until(() => caller.voiced().length > 10, 'the greeting');
      await caller.until(() => {
        const last = caller.voiced().at(-1);
        return last !== undefined && performance.now() - last.at > 700;
      }, 'the end of the greeting');
      expect(m.ofType('user-transcription')).toEqual([]);
      expect(m.ofType('user-started-speaking')).toEqual([]);
      expect(m.audio).toEqual([]);

      await caller.say(await loadPrompt('hello-world'));
      await m.until(() => m.texts('bot-transcription').includes('You said: hello world.'), 'the answer', 15_000);
      expect(m.ofType('user-transcription').filter((x) => x.data?.['final'] === true).map((x) => x.data?.['text'])).toContain('hello world');
      expect(m.botAnswers()).toContain('You said: hello world.');
      expect(m.ofType('bot-started-speaking').length).toBeGreaterThan(0);
      // A monitor never receives the call's audio.
      expect(m.audio).toEqual([]);
    } finally {
      await caller.hangup();
    }
    const closed = await monitor.closed;
    expect(closed.code).toBe(1000);
    expect(closed.reason).toMatch(/ended \(hangup\)/);
  }, 40_000);
});

describe('the console API', () => {
  it('serves the page, lists calls, creates a softphone call and stops it', async () => {
    const base = `http://127.0.0.1:${port(t)}`;
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toContain('console.js');
    for (const asset of ['/console.js', '/frames.js', '/mic-worklet.js']) {
      const r = await fetch(`${base}${asset}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/javascript/);
    }

    const json = { 'content-type': 'application/json' };
    expect((await fetch(`${base}/api/calls`, { method: 'POST' })).status).toBe(415);
    const created = await fetch(`${base}/api/calls`, { method: 'POST', headers: json, body: '{}' });
    expect(created.status).toBe(201);
    const call = (await created.json()) as { id: string; state: string; stt_type: string; tts_type: string; llm_type: string };
    expect(call).toMatchObject({ state: 'waiting', stt_type: 'sphinx', tts_type: 'espeak', llm_type: 'local.echo' });

    const list = (await (await fetch(`${base}/api/calls`)).json()) as { host_id: string; calls: Array<{ id: string; transport: string }> };
    expect(list.host_id).toBe('127.0.0.1');
    expect(list.calls.find((c) => c.id === call.id)).toMatchObject({ transport: 'none' });

    const stop = await fetch(`${base}/api/calls/${call.id}/stop`, { method: 'POST', headers: json });
    expect(stop.status).toBe(200);
    expect(t.app.calls.session(call.id)).toBeUndefined();
    expect((await fetch(`${base}/api/calls/${call.id}/stop`, { method: 'POST', headers: json })).status).toBe(404);
    // An ended call is not a WebSocket endpoint any more.
    expect((await expectRefused(wsUrl(port(t), call.id))).status).toBe(404);
  });
});

describe('WebSocket access', () => {
  it('needs the token when HTTP_AUTH_TOKEN is set, and 404s unknown calls with UNKNOWN_CALLS=reject', async () => {
    const p = port(authed);
    const unknown = randomUUID();
    expect((await expectRefused(wsUrl(p, unknown))).status).toBe(401);
    expect((await expectRefused(wsUrl(p, unknown), { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await expectRefused(wsUrl(p, unknown, '?token=wrong'))).status).toBe(401);
    const notFound = await expectRefused(wsUrl(p, unknown), { authorization: `Bearer ${TOKEN}` });
    expect(notFound.status).toBe(404);
    expect(notFound.body).toContain('unknown');
    expect((await expectRefused(wsUrl(p, unknown, `?token=${TOKEN}`))).status).toBe(404);
    expect((await expectRefused(`ws://127.0.0.1:${p}/v1/pipecatcalls/not-a-uuid/ws?token=${TOKEN}`)).status).toBe(404);
    expect(authed.app.calls.size).toBe(0);

    // The console API takes the same token; a call made there accepts the WebSocket with it.
    const base = `http://127.0.0.1:${p}`;
    expect((await fetch(`${base}/api/calls`)).status).toBe(401);
    const created = await fetch(`${base}/api/calls?token=${TOKEN}`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const media = await WsTestClient.connect(wsUrl(p, id), { authorization: `Bearer ${TOKEN}` });
    const monitor = await WsTestClient.connect(wsUrl(p, id, `?token=${TOKEN}&mode=monitor`));
    try {
      expect(authed.app.calls.session(id)?.transport).toBe('websocket');
      expect(authed.app.calls.session(id)?.listeners.size).toBe(2);
      // A second media client is refused before the upgrade; without mode it would just monitor.
      expect((await expectRefused(wsUrl(p, id, `?token=${TOKEN}&mode=media`))).status).toBe(409);
    } finally {
      await media.close();
    }
    expect((await monitor.closed).code).toBe(1000);
    await media.until(() => authed.app.calls.session(id) === undefined, 'the call to end');
  });
});
