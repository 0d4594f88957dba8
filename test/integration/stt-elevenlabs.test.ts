// The ElevenLabs STT provider through the official SDK's realtime client (@elevenlabs/elevenlabs-js
// `ScribeRealtime`) against the local fake ElevenLabs realtime STT server: URL, query and key header, the language
// mapping, audio as base64 JSON chunks, partial/committed transcripts, the one transparent reconnect, errors the
// provider reports in the stream, a refused key, frames the SDK cannot parse, and a clean close.

import { getEventListeners } from 'node:events';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { ProviderError } from '../../src/errors.js';
import { createElevenLabsStt, type ElevenLabsSttSettings } from '../../src/providers/stt/elevenlabs.js';
import type { SttStream } from '../../src/providers/types.js';
import { FakeElevenLabsSttServer } from '../fakes/elevenlabs-stt-server.js';
import { extraHandles, feed, FRAME_BYTES, openStt, type SttHarness } from '../helpers/stt-harness.js';

const KEY = 'xi_stt_test_key_0123456789';
let server: FakeElevenLabsSttServer;
const streams: SttStream[] = [];

beforeAll(async () => {
  server = await FakeElevenLabsSttServer.start(KEY);
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => server.reset());
afterEach(async () => {
  await Promise.all(streams.splice(0).map((s) => s.close()));
});

const open = (over: Partial<ElevenLabsSttSettings> = {}, language = 'en-US'): Promise<SttHarness> =>
  openStt(createElevenLabsStt({ apiKey: KEY, baseUrl: server.url, ...over }), language, streams);
const until = (predicate: () => boolean, what: string, timeoutMs = 3000): Promise<number> => server.waitFor(predicate, what, timeoutMs);

describe('ElevenLabs STT (official SDK) against the fake ElevenLabs realtime STT server', () => {
  it('dials /v1/speech-to-text/realtime with the model, VAD commits, PCM 16 kHz, the language and xi-api-key', async () => {
    await open({}, 'pt-BR');
    const c = server.last;
    expect(c.path).toBe('/v1/speech-to-text/realtime');
    expect(c.query).toEqual({ model_id: 'scribe_v2_realtime', commit_strategy: 'vad', audio_format: 'pcm_16000', vad_silence_threshold_secs: '0.5', language_code: 'pt' });
    expect(c.headers['xi-api-key']).toBe(KEY);
  });

  it('omits the language when the call has none, passes model and silence overrides, and takes a ws:// base', async () => {
    await open({ model: 'scribe_v1_test', vadSilenceSecs: 1.2, baseUrl: server.url.replace('http://', 'ws://') }, '');
    expect(server.last.query).toEqual({ model_id: 'scribe_v1_test', commit_strategy: 'vad', audio_format: 'pcm_16000', vad_silence_threshold_secs: '1.2' });
  });

  it('a silence threshold the SDK refuses fails open() before dialling', async () => {
    const err = await open({ vadSilenceSecs: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as Error).message).toBe(`cannot open ElevenLabs realtime transcription at 127.0.0.1:${server.port}: vadSilenceThresholdSecs must be between 0.3 and 3.0`);
    expect((err as ProviderError).retryable).toBe(false);
    expect(server.connections).toHaveLength(0);
  });

  it('streams the audio as base64 input_audio_chunk messages at 16 kHz, never committing itself', async () => {
    const h = await open();
    await feed(h.stream, 50);
    await until(() => server.last.audioBytes === 50 * FRAME_BYTES, '1 s of audio');
    expect(server.last.audioFrames).toBe(50);
    expect([...server.sampleRates]).toEqual([16000]);
    expect(server.invalidChunks).toEqual([]);
    expect(server.commits).toBe(0);
    expect(h.errors).toEqual([]);
  });

  it('delivers partial then committed transcripts in order, trimmed, and skips empty ones', async () => {
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
    server.sendTranscript('  ', false);
    server.sendTranscript('after the empty ones ', true);
    await until(() => h.transcripts.length === 7, 'the next committed transcript');
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
    expect(server.connections[1]!.query).toEqual(server.connections[0]!.query);
    await until(() => h.transcripts.filter((t) => t.final).length >= 5, 'committed transcripts after the reconnect');
    const finals = h.transcripts.filter((t) => t.final).map((t) => t.text);
    expect(finals).toEqual(finals.map((_, i) => `part ${i}`));
    expect(h.fatals).toEqual([]);
  });

  it('a second drop ends the stream: onFatal exactly once', async () => {
    server.dropAfter(10 * FRAME_BYTES, 'always');
    const h = await open();
    await feed(h.stream, 60);
    await until(() => h.fatals.length > 0, 'onFatal');
    await feed(h.stream, 20);
    expect(h.fatals).toHaveLength(1);
    expect(h.fatals[0]!.message).toMatch(/ElevenLabs realtime transcription at 127\.0\.0\.1:\d+: closed with code 1006/);
    expect(server.connections).toHaveLength(2);
  });

  it('a retryable error in the stream is reported and the stream carries on', async () => {
    const h = await open();
    server.sendError('transcriber_error', 'model hiccup');
    server.sendTranscript('still listening', true);
    await until(() => h.transcripts.length === 1, 'the transcript after the error');
    expect(h.errors.map((e) => e.message)).toEqual(['ElevenLabs reported transcriber_error: model hiccup']);
    expect((h.errors[0] as ProviderError).retryable).toBe(true);
    expect(h.fatals).toEqual([]);
  });

  it('quota_exceeded and a close mid-call end the stream at once: no reconnect for a refusal', async () => {
    const h = await open();
    server.sendError('quota_exceeded', 'You have exceeded your quota');
    server.last.ws.close(1008, 'quota_exceeded');
    await until(() => h.fatals.length === 1, 'onFatal');
    expect(h.fatals[0]!.message).toBe('ElevenLabs reported quota_exceeded: You have exceeded your quota');
    expect((h.fatals[0] as ProviderError).retryable).toBe(false);
    expect(server.connections).toHaveLength(1);
  });

  it('a refused key fails open() with the auth error, without the key, not retryable', async () => {
    const wrong = 'xi_wrong_key_abcdefghijkl';
    const err = await open({ apiKey: wrong }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as Error).message).toBe('ElevenLabs reported auth_error (check ELEVENLABS_API_KEY): Invalid API key');
    expect((err as ProviderError).retryable).toBe(false);
    expect(server.refusals[0]?.headers['xi-api-key']).toBe(wrong);
  });

  it('open() rejects on HTTP 503 at the upgrade (retryable), a refused connection and a stalled upgrade', async () => {
    server.refuseUpgrades(503, 1);
    const refusedUpgrade = await open().catch((e: unknown) => e);
    expect((refusedUpgrade as Error).message).toBe(`ElevenLabs realtime transcription at 127.0.0.1:${server.port}: HTTP 503 at the WebSocket upgrade`);
    expect((refusedUpgrade as ProviderError).retryable).toBe(true);

    const refused = await openStt(createElevenLabsStt({ apiKey: KEY, baseUrl: 'http://127.0.0.1:1' }), '', streams).catch((e: unknown) => e);
    expect((refused as Error).message).toBe('ElevenLabs realtime transcription at 127.0.0.1:1: connection refused');

    server.stallUpgrade();
    const stalled = await open({ connectTimeoutMs: 300 }).catch((e: unknown) => e);
    expect((stalled as Error).message).toContain('no WebSocket upgrade within 300 ms');
  });

  it('a frame that is not JSON (which the SDK would throw on) is reported, and the stream carries on', async () => {
    const h = await open();
    server.sendRaw('{"message_type":"partial_transcript","text":"secret words');
    server.sendRaw(JSON.stringify({ message_type: 'committed_transcript' }));
    server.sendTranscript('still listening', true);
    await until(() => h.transcripts.length === 1, 'the transcript after the garbage');
    expect(h.errors.map((e) => e.message)).toEqual([
      expect.stringContaining('a text frame that is not JSON'),
      expect.stringContaining('a committed transcript without text'),
    ]);
    expect(h.errors.some((e) => e.message.includes('secret'))).toBe(false);
    expect(h.fatals).toEqual([]);
    await feed(h.stream, 5);
    await until(() => server.last.audioBytes === 5 * FRAME_BYTES, 'audio after the garbage');
  });

  it('close() closes the session; the server sees 1000; nothing is left behind', async () => {
    const before = process.getActiveResourcesInfo();
    const h = await open();
    await feed(h.stream, 10);
    await h.stream.close();
    const c = server.last;
    await until(() => c.closed, 'the server side to close');
    expect(c.closeCode).toBe(1000);
    expect(getEventListeners(h.controller.signal, 'abort')).toHaveLength(0);
    await until(() => Object.keys(extraHandles(before)).length === 0, 'handles back to baseline');
    await h.stream.close();
    h.stream.write(new Int16Array(320));
    expect(h.fatals).toEqual([]);
  });

  it('the call signal closes the stream without onFatal', async () => {
    const h = await open();
    h.controller.abort();
    await until(() => server.last.closed, 'the session to end');
    expect(server.last.closeCode).toBe(1000);
    expect(h.fatals).toEqual([]);
  });
});
