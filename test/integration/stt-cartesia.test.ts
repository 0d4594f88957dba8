// The Cartesia STT provider through the official SDK (@cartesia/cartesia-js, `stt.manualFinalize.websocket`)
// against the local fake Cartesia STT server: URL, query and headers on the wire, the language mapping, audio as
// binary frames, interim/final transcripts, the one transparent reconnect, errors the provider reports in the
// stream, refusals at the upgrade, malformed frames, and a clean close.

import { getEventListeners } from 'node:events';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { ProviderError } from '../../src/errors.js';
import { createCartesiaStt, type CartesiaSttSettings } from '../../src/providers/stt/cartesia.js';
import type { SttStream } from '../../src/providers/types.js';
import { FakeCartesiaSttServer } from '../fakes/cartesia-stt-server.js';
import { extraHandles, feed, FRAME_BYTES, openStt, type SttHarness } from '../helpers/stt-harness.js';

const KEY = 'sk_car_stt_test_0123456789';
let server: FakeCartesiaSttServer;
const streams: SttStream[] = [];

beforeAll(async () => {
  server = await FakeCartesiaSttServer.start(KEY);
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => server.reset());
afterEach(async () => {
  await Promise.all(streams.splice(0).map((s) => s.close()));
});

const open = (over: Partial<CartesiaSttSettings> = {}, language = 'en-US'): Promise<SttHarness> =>
  openStt(createCartesiaStt({ apiKey: KEY, baseUrl: server.url, ...over }), language, streams);
const until = (predicate: () => boolean, what: string, timeoutMs = 3000): Promise<number> => server.waitFor(predicate, what, timeoutMs);

describe('Cartesia STT (official SDK) against the fake Cartesia STT server', () => {
  it('dials /stt/websocket with the model, PCM format, the two-letter language and the Bearer key', async () => {
    await open({}, 'de-DE');
    const c = server.last;
    expect(c.path).toBe('/stt/websocket');
    expect(c.query).toEqual({ model: 'ink-whisper', encoding: 'pcm_s16le', sample_rate: '16000', language: 'de' });
    expect(c.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(c.headers['cartesia-version']).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });

  it('omits the language when the call has none and passes a model override', async () => {
    await open({ model: 'ink-2' }, '');
    expect(server.last.query).toEqual({ model: 'ink-2', encoding: 'pcm_s16le', sample_rate: '16000' });
  });

  it('streams the audio as binary frames of 16 kHz s16le', async () => {
    const h = await open();
    await feed(h.stream, 50);
    await until(() => server.last.audioBytes === 50 * FRAME_BYTES, '1 s of audio');
    expect(server.last.audioFrames).toBe(50);
    expect(server.last.texts).toEqual([]);
    expect(h.errors).toEqual([]);
  });

  it('delivers interim then final transcripts in order, trimmed, and skips empty ones', async () => {
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
    server.sendTranscript('', true);
    server.sendTranscript('   ', false);
    server.sendTranscript(' after the empty ones', true);
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
    expect(second.query).toEqual(server.connections[0]!.query);
    expect(second.headers.authorization).toBe(`Bearer ${KEY}`);
    await until(() => h.transcripts.filter((t) => t.final).length >= 5, 'finals after the reconnect');
    const finals = h.transcripts.filter((t) => t.final).map((t) => t.text);
    expect(finals).toEqual(finals.map((_, i) => `part ${i}`));
    expect(h.fatals).toEqual([]);
  });

  it('a second drop ends the stream: onFatal exactly once, retryable, then writes and close are harmless', async () => {
    server.dropAfter(10 * FRAME_BYTES, 'always');
    const h = await open();
    await feed(h.stream, 60);
    await until(() => h.fatals.length > 0, 'onFatal');
    await feed(h.stream, 20);
    expect(h.fatals).toHaveLength(1);
    expect(h.fatals[0]).toBeInstanceOf(ProviderError);
    expect(h.fatals[0]!.message).toMatch(/Cartesia live transcription at 127\.0\.0\.1:\d+: closed with code 1006/);
    expect(server.connections).toHaveLength(2);
    await until(() => server.openConnections === 0, 'no open session');
    await h.stream.close();
    expect(h.fatals).toHaveLength(1);
  });

  it('an error Cartesia reports in the stream is reported and the stream carries on', async () => {
    const h = await open();
    server.sendError(500, 'Internal Server Error', 'transcriber hiccup');
    server.sendTranscript('still listening', true);
    await until(() => h.transcripts.length === 1, 'the transcript after the error');
    expect(h.errors).toHaveLength(1);
    expect(h.errors[0]!.message).toBe('Cartesia reported an error (500): Internal Server Error: transcriber hiccup');
    expect((h.errors[0] as ProviderError).retryable).toBe(true);
    expect(h.fatals).toEqual([]);
  });

  it('a refusal reported in the stream and then a close ends the call without a reconnect', async () => {
    const h = await open();
    server.sendError(402, 'Payment Required', 'out of credits');
    server.last.ws.close(1008, 'out of credits');
    await until(() => h.fatals.length === 1, 'onFatal');
    expect(h.fatals[0]!.message).toContain('out of credits');
    expect((h.fatals[0] as ProviderError).retryable).toBe(false);
    expect(server.connections).toHaveLength(1);
  });

  it.each([
    [401, /HTTP 401: the API key was refused \(check CARTESIA_API_KEY\)/, false],
    [503, /HTTP 503 at the WebSocket upgrade/, true],
  ])('open() rejects with a ProviderError on HTTP %i at the upgrade, without the key', async (status, pattern, retryable) => {
    const wrong = 'sk_car_wrong_key_abcdefgh';
    if (status === 503) server.refuseUpgrades(503, 1);
    const err = await open(status === 401 ? { apiKey: wrong } : {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    const pe = err as ProviderError;
    expect(pe.provider).toBe('cartesia');
    expect(pe.stage).toBe('stt');
    expect(pe.message).toContain(`Cartesia live transcription at 127.0.0.1:${server.port}`);
    expect(pe.message).toMatch(pattern);
    expect(pe.message).not.toContain(wrong);
    expect(pe.message).not.toContain(KEY);
    expect(pe.retryable).toBe(retryable);
    expect(server.refusals).toHaveLength(1);
  });

  it('open() rejects naming the host when the connection is refused or never upgraded', async () => {
    const refused = await openStt(createCartesiaStt({ apiKey: KEY, baseUrl: 'http://127.0.0.1:1' }), '', streams).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ProviderError);
    expect((refused as Error).message).toBe('Cartesia live transcription at 127.0.0.1:1: connection refused');

    server.stallUpgrade();
    const stalled = await open({ connectTimeoutMs: 300 }).catch((e: unknown) => e);
    expect(stalled).toBeInstanceOf(ProviderError);
    expect((stalled as Error).message).toContain('no WebSocket upgrade within 300 ms');
    expect((stalled as ProviderError).retryable).toBe(true);
  });

  it('refuses a missing key or a base URL that is not http(s)/ws(s) before dialling', async () => {
    const noKey = await openStt(createCartesiaStt({ apiKey: '', baseUrl: server.url }), '', streams).catch((e: unknown) => e);
    expect((noKey as Error).message).toContain('CARTESIA_API_KEY');
    const badUrl = await openStt(createCartesiaStt({ apiKey: KEY, baseUrl: 'ftp://x' }), '', streams).catch((e: unknown) => e);
    expect((badUrl as Error).message).toContain('CARTESIA_BASE_URL');
    expect(server.connections).toHaveLength(0);
  });

  it('malformed frames go to onError without their content, and the stream carries on', async () => {
    const h = await open();
    server.sendRaw('{"type":"transcript", "text": "secret words');
    server.sendRaw(JSON.stringify({ type: 'transcript', text: 'no final flag' }));
    server.sendRaw(JSON.stringify({ type: 'surprise' }));
    server.last.ws.send(Buffer.from([1, 2, 3]));
    server.sendTranscript('still listening', true);
    await until(() => h.transcripts.length === 1, 'the transcript after the garbage');
    expect(h.errors.map((e) => e.message)).toEqual([
      expect.stringContaining('malformed message from Cartesia live transcription at 127.0.0.1'),
      expect.stringContaining('a transcript without text or is_final'),
      expect.stringContaining('unknown type "surprise"'),
      expect.stringContaining('an unexpected binary frame'),
    ]);
    expect(h.errors.some((e) => e.message.includes('secret'))).toBe(false);
    expect(h.fatals).toEqual([]);
  });

  it('close() sends the close command, Cartesia answers done and closes; nothing is left behind', async () => {
    const before = process.getActiveResourcesInfo();
    const h = await open();
    await feed(h.stream, 10);
    await h.stream.close();
    const c = server.last;
    expect(c.texts).toEqual(['close']);
    await until(() => c.closed, 'the server side to close');
    expect(c.closeCode).toBe(1000);
    expect(getEventListeners(h.controller.signal, 'abort')).toHaveLength(0);
    await until(() => Object.keys(extraHandles(before)).length === 0, 'handles back to baseline');
    await h.stream.close(); // idempotent
    expect(c.texts).toEqual(['close']);
    h.stream.write(new Int16Array(320));
    expect(h.fatals).toEqual([]);
  });

  it('the call signal closes the stream: close command, no onFatal', async () => {
    const h = await open();
    h.controller.abort();
    await until(() => server.last.closed, 'the session to end');
    expect(server.last.texts).toEqual(['close']);
    expect(h.fatals).toEqual([]);
  });
});
