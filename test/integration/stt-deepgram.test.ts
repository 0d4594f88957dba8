// The Deepgram STT provider through the official SDK against the local fake Deepgram server: the query and headers
// on the wire, audio delivery, interim/final mapping, the one transparent reconnect, refusals, malformed messages,
// KeepAlive, stalls and a clean close.

import { getEventListeners } from 'node:events';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';

import { ProviderError } from '../../src/errors.js';
import { createDeepgramStt, type DeepgramSttSettings } from '../../src/providers/stt/deepgram.js';
import type { SttStream, SttTranscript } from '../../src/providers/types.js';
import { FakeDeepgramServer } from '../fakes/deepgram-server.js';
import { waitUntil } from '../helpers/wait.js';

const KEY = 'dg_test_key_0123456789abcdef';
const FRAME = 320; // 20 ms at 16 kHz
const FRAME_BYTES = FRAME * 2;
const log = pino({ level: 'silent' });

let server: FakeDeepgramServer;
const streams: SttStream[] = [];

beforeAll(async () => {
  server = await FakeDeepgramServer.start({ apiKey: KEY });
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.reset();
});
afterEach(async () => {
  await Promise.all(streams.splice(0).map((s) => s.close()));
});

interface Harness {
  stream: SttStream;
  transcripts: SttTranscript[];
  errors: Error[];
  fatals: Error[];
  controller: AbortController;
}

async function open(over: Partial<DeepgramSttSettings> = {}, language = 'en-US'): Promise<Harness> {
  const transcripts: SttTranscript[] = [];
  const errors: Error[] = [];
  const fatals: Error[] = [];
  const controller = new AbortController();
  const provider = createDeepgramStt({ apiKey: KEY, baseUrl: server.url, ...over });
  const stream = await provider.open({
    language,
    signal: controller.signal,
    log,
    onTranscript: (t) => transcripts.push(t),
    onFatal: (e) => fatals.push(e),
    onError: (e) => errors.push(e),
  });
  streams.push(stream);
  return { stream, transcripts, errors, fatals, controller };
}

/** A 20 ms frame of a quiet 440 Hz tone (the fake does not listen; the bytes only have to be 16 kHz linear16). */
function frame(): Int16Array {
  const f = new Int16Array(FRAME);
  for (let i = 0; i < FRAME; i++) f[i] = Math.round(1000 * Math.sin((2 * Math.PI * 440 * i) / 16_000));
  return f;
}

/** Writes `count` frames, yielding to the event loop between frames so socket events interleave as in a call. */
async function feed(stream: SttStream, count: number): Promise<void> {
  const f = frame();
  for (let i = 0; i < count; i++) {
    stream.write(f);
    await new Promise((r) => setImmediate(r));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How many more of each resource type (sockets, timers, …) are active now than in `before`. */
function extra(before: string[]): Record<string, number> {
  const count = (list: string[]): Map<string, number> => {
    const m = new Map<string, number>();
    for (const t of list) m.set(t, (m.get(t) ?? 0) + 1);
    return m;
  };
  const was = count(before);
  const out: Record<string, number> = {};
  for (const [t, n] of count(process.getActiveResourcesInfo())) if (n > (was.get(t) ?? 0)) out[t] = n - (was.get(t) ?? 0);
  return out;
}

async function until(predicate: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  await server.waitFor(predicate, what, timeoutMs);
}

describe('Deepgram STT (official SDK) against the fake Deepgram server', () => {
  it('dials /v1/listen with the query parameters and Token header the SPEC requires', async () => {
    await open();
    const c = server.last;
    expect(c.path).toBe('/v1/listen');
    expect(c.authorization).toBe(`Token ${KEY}`);
    expect(c.query).toEqual({
      model: 'nova-2',
      encoding: 'linear16',
      sample_rate: '16000',
      channels: '1',
      interim_results: 'true',
      punctuate: 'true',
      smart_format: 'true',
      language: 'en-US',
    });
  });

  it('passes a model override through and omits an empty language', async () => {
    await open({ model: 'nova-3' }, '');
    expect(server.last.query.model).toBe('nova-3');
    expect(server.last.query).not.toHaveProperty('language');
  });

  it('streams the audio as binary frames of 16 kHz linear16', async () => {
    const h = await open();
    await feed(h.stream, 50);
    await until(() => server.last.audioBytes === 50 * FRAME_BYTES, '1 s of audio');
    expect(server.last.audioFrames).toBe(50);
    expect(h.errors).toEqual([]);
  });

  it('delivers interim then final transcripts in order and skips empty ones', async () => {
    server.autoTranscribe({ afterBytes: 10 * FRAME_BYTES, text: (n) => `Utterance number ${n}.` });
    const h = await open();
    await feed(h.stream, 30);
    await until(() => h.transcripts.length >= 6, 'three utterances');
    expect(h.transcripts.slice(0, 6)).toEqual([
      { text: 'Utterance number', final: false },
      { text: 'Utterance number 0.', final: true },
      { text: 'Utterance number', final: false },
      { text: 'Utterance number 1.', final: true },
      { text: 'Utterance number', final: false },
      { text: 'Utterance number 2.', final: true },
    ]);
    server.sendResults('', { isFinal: true });
    server.sendResults('   ', { isFinal: false });
    server.sendResults('after the empty ones', { isFinal: true });
    await until(() => h.transcripts.length === 7, 'the next final');
    expect(h.transcripts[6]).toEqual({ text: 'after the empty ones', final: true });
    expect(h.errors).toEqual([]);
  });

  it('reconnects a dropped stream once, transparently: audio and transcripts continue', async () => {
    server.autoTranscribe({ afterBytes: 10 * FRAME_BYTES, text: (n) => `part ${n}` });
    server.dropAfter(25 * FRAME_BYTES, 'once');
    const h = await open();
    await feed(h.stream, 100);
    await until(() => server.connections.length === 2 && server.connections[1]!.audioBytes > 0, 'the reconnected session');
    await feed(h.stream, 40);
    const second = server.connections[1]!;
    await until(() => h.transcripts.some((t) => t.final && second.audioBytes > 0 && t.text === `part ${server.utterances - 1}`), 'finals after the reconnect');
    expect(server.connections[0]!.closeCode).toBe(1006);
    expect(second.query).toEqual(server.connections[0]!.query);
    expect(second.authorization).toBe(`Token ${KEY}`);
    // Audio written while reconnecting was buffered and sent on the new session.
    expect(second.audioBytes).toBeGreaterThan(40 * FRAME_BYTES);
    const finals = h.transcripts.filter((t) => t.final).map((t) => t.text);
    expect(finals.length).toBeGreaterThanOrEqual(5);
    expect(finals).toEqual(finals.map((_, i) => `part ${i}`));
    expect(h.fatals).toEqual([]);
  });

  it('a second drop ends the stream: onFatal exactly once, then writes and close are harmless', async () => {
    server.dropAfter(10 * FRAME_BYTES, 'always');
    const h = await open();
    await feed(h.stream, 60);
    await until(() => h.fatals.length > 0, 'onFatal');
    await feed(h.stream, 20);
    await sleep(50);
    expect(h.fatals).toHaveLength(1);
    expect(h.fatals[0]).toBeInstanceOf(ProviderError);
    expect(h.fatals[0]!.message).toMatch(/Deepgram.*127\.0\.0\.1/);
    expect(server.connections).toHaveLength(2);
    expect(server.openConnections).toBe(0);
    await h.stream.close();
    expect(h.fatals).toHaveLength(1);
  });

  it('a reconnect that is refused is fatal (once)', async () => {
    server.dropAfter(10 * FRAME_BYTES, 'once');
    const h = await open();
    server.refuseUpgrades(500);
    await feed(h.stream, 30);
    await until(() => h.fatals.length > 0, 'onFatal');
    expect(h.fatals).toHaveLength(1);
    expect(h.fatals[0]!.message).toContain('HTTP 500');
    expect(server.refusals).toHaveLength(1);
  });

  it.each([
    [401, /HTTP 401.*DEEPGRAM_API_KEY/, false],
    [500, /HTTP 500/, true],
  ])('open() rejects with a ProviderError on HTTP %i at the upgrade, without the key', async (status, pattern, retryable) => {
    if (status === 401) {
      const err = await open({ apiKey: 'wrong_key_abcdefghijkl' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProviderError);
      expect((err as Error).message).not.toContain('wrong_key_abcdefghijkl');
      expect((err as Error).message).toMatch(pattern);
      expect((err as ProviderError).retryable).toBe(retryable);
      expect(server.refusals[0]?.authorization).toBe('Token wrong_key_abcdefghijkl');
      return;
    }
    server.refuseUpgrades(status, 1);
    const err = await open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    const pe = err as ProviderError;
    expect(pe.provider).toBe('deepgram');
    expect(pe.stage).toBe('stt');
    expect(pe.message).toContain(`Deepgram live transcription at 127.0.0.1:${server.port}`);
    expect(pe.message).toMatch(pattern);
    expect(pe.message).not.toContain(KEY);
    expect(pe.retryable).toBe(retryable);
  });

  it('open() rejects naming the host when the connection is refused or never upgraded', async () => {
    const refused = await createDeepgramStt({ apiKey: KEY, baseUrl: 'http://127.0.0.1:1' })
      .open({ language: '', signal: new AbortController().signal, log, onTranscript: () => {}, onFatal: () => {} })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ProviderError);
    expect((refused as Error).message).toMatch(/Deepgram live transcription at 127\.0\.0\.1:1: connection refused/);
    expect((refused as Error).message).not.toContain(KEY);

    server.stallUpgrade();
    const t0 = Date.now();
    const stalled = await open({ connectTimeoutMs: 300 }).catch((e: unknown) => e);
    expect(stalled).toBeInstanceOf(ProviderError);
    expect((stalled as Error).message).toContain('no WebSocket upgrade within 300 ms');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('malformed messages go to onError and the stream carries on', async () => {
    const h = await open();
    server.sendRaw('{"type":"Results", "channel": {');
    server.sendRaw(JSON.stringify({ type: 'Results', channel: { alternatives: [{ confidence: 1 }] } }));
    server.sendRaw(JSON.stringify({ type: 'Surprise' }));
    server.sendResults('still listening', { isFinal: true });
    await until(() => h.transcripts.length === 1, 'the result after the garbage');
    expect(h.errors).toHaveLength(3);
    for (const e of h.errors) {
      expect(e).toBeInstanceOf(ProviderError);
      expect(e.message).toContain('malformed message from Deepgram');
    }
    expect(h.transcripts).toEqual([{ text: 'still listening', final: true }]);
    expect(h.fatals).toEqual([]);
    await feed(h.stream, 5);
    await until(() => server.last.audioBytes === 5 * FRAME_BYTES, 'audio after the garbage');
  });

  it('sends KeepAlive while no audio flows', async () => {
    await open({ keepAliveMs: 100 });
    await until(() => server.last.keepAlives >= 2, 'two KeepAlives');
    expect(server.last.unknownText).toEqual([]);
  });

  it('a session that stops answering while audio flows is treated as a drop and reconnected', async () => {
    server.autoTranscribe({ afterBytes: 10 * FRAME_BYTES, text: 'hello' });
    const h = await open({ stallTimeoutMs: 200 });
    server.stall();
    // Audio keeps flowing, as in a call, until the stall watchdog has replaced the session.
    await waitUntil('the stalled session to be replaced', async () => {
      if (server.connections.length >= 2) return true;
      await feed(h.stream, 10);
      return false;
    }, 5000, 20);
    expect(server.connections).toHaveLength(2);
    server.stall(false);
    await feed(h.stream, 20);
    await until(() => h.transcripts.some((t) => t.final), 'a final from the new session');
    expect(h.fatals).toEqual([]);
  });

  it('close() sends CloseStream, lets Deepgram close, and leaves no handle or listener behind', async () => {
    const before = process.getActiveResourcesInfo();
    const h = await open();
    await feed(h.stream, 10);
    await h.stream.close();
    const c = server.last;
    expect(c.closeStreams).toBe(1);
    await until(() => c.closed, 'the server side to close');
    expect(c.closeCode).toBe(1000);
    expect(getEventListeners(h.controller.signal, 'abort')).toHaveLength(0);
    await until(() => Object.keys(extra(before)).length === 0, 'handles back to baseline');
    await h.stream.close(); // idempotent
    expect(c.closeStreams).toBe(1);
    h.stream.write(frame());
    expect(h.fatals).toEqual([]);
  });

  it('close() on a hung server does not wait past its grace period or leave the socket (or ws close timer) behind', async () => {
    const before = process.getActiveResourcesInfo();
    const h = await open({ closeGraceMs: 150 });
    server.freeze();
    const t0 = Date.now();
    await h.stream.close();
    // It waited for Deepgram's flush (the grace period), then gave up instead of waiting for the close handshake.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(Date.now() - t0).toBeLessThan(1000);
    // Only the frozen server-side socket may remain: no client socket, no ws close-handshake timer.
    await until(() => JSON.stringify(extra(before)) === '{"TCPSocketWrap":1}', 'client handles back to baseline');
    server.last.tcp.destroy();
  });

  it('the call signal closes the stream: CloseStream, no onFatal', async () => {
    const h = await open();
    h.controller.abort();
    await until(() => server.last.closed, 'the session to end');
    expect(server.last.closeStreams).toBe(1);
    expect(h.fatals).toEqual([]);
    expect(getEventListeners(h.controller.signal, 'abort')).toHaveLength(0);
  });
});
