// The ElevenLabs TTS provider (multi-context WebSocket, messages through the official SDK's wire schemas) against
// the local fake: wire contents, one context per turn, word alignment, cancel on barge-in, errors, drops, bad keys.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ProviderError } from '../../src/errors.js';
import { createElevenLabsTts, ELEVENLABS_DEFAULT_VOICE, type ElevenLabsTtsSettings } from '../../src/providers/tts/elevenlabs.js';
import type { TtsEvent, TtsSession, TtsTurn, TtsWord } from '../../src/providers/types.js';
import { FakeElevenLabsServer } from '../fakes/elevenlabs-server.js';

const KEY = 'xi_test_key_0123456789abcdef';
const BYTES_PER_CHAR = 320;
const log = pino({ level: 'silent' });

let server: FakeElevenLabsServer;
const sessions: TtsSession[] = [];

beforeAll(async () => {
  server = await FakeElevenLabsServer.start({ apiKey: KEY, bytesPerChar: BYTES_PER_CHAR, charsPerChunk: 8 });
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.upgrades.length = 0;
  server.messages.length = 0;
  server.closedContexts.length = 0;
  server.violations.length = 0;
  server.faults.length = 0;
  server.rejectUpgrades = null;
  server.options.chunkIntervalMs = 0;
});
afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.close()));
  expect(server.violations).toEqual([]);
});

function settings(over: Partial<ElevenLabsTtsSettings> = {}): ElevenLabsTtsSettings {
  return { apiKey: KEY, baseUrl: server.baseUrl, ...over };
}

async function open(over: Partial<ElevenLabsTtsSettings> = {}, voiceId = ELEVENLABS_DEFAULT_VOICE, language = 'en-US'): Promise<TtsSession> {
  const session = await createElevenLabsTts(settings(over)).open({ voiceId, language, signal: new AbortController().signal, log });
  sessions.push(session);
  return session;
}

async function collect(turn: TtsTurn): Promise<TtsEvent[]> {
  const out: TtsEvent[] = [];
  for await (const e of turn.events()) out.push(e);
  return out;
}

const audioBytes = (events: TtsEvent[]): number => events.reduce((n, e) => n + (e.type === 'audio' ? e.pcm.length : 0), 0);
const wordsOf = (events: TtsEvent[]): TtsWord[] => events.flatMap((e) => (e.type === 'words' ? e.words : []));

async function errorOf(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

describe('ElevenLabs TTS provider (multi-context WebSocket ↔ fake server)', () => {
  it("dials the voice's multi-stream-input with pcm_16000, the model, the two-letter language and the key header", async () => {
    const session = await open();
    expect(session.sampleRate).toBe(16_000);
    const up = server.upgrades[0];
    expect(up?.path).toBe(`/v1/text-to-speech/${ELEVENLABS_DEFAULT_VOICE}/multi-stream-input`);
    expect(up?.query).toMatchObject({ output_format: 'pcm_16000', model_id: 'eleven_flash_v2_5', language_code: 'en' });
    expect(up?.headers['xi-api-key']).toBe(KEY);
  });

  it('one context per turn: " " to open it, each sentence flushed with a trailing space, close_context at the end; all audio, then the end', async () => {
    const session = await open();
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Hello there.');
    turn.say('How are you?');
    turn.end();
    const events = await collect(turn);
    const contextId = server.messages[0]?.context_id as string;
    expect(server.textsOf(contextId)).toEqual([' ', 'Hello there. ', 'How are you? ']);
    expect(server.messages.filter((m) => m.flush === true)).toHaveLength(2);
    expect(server.closedContexts).toEqual([contextId]);
    expect(audioBytes(events)).toBe(('Hello there. '.length + 'How are you? '.length) * BYTES_PER_CHAR);
    expect(events.every((e) => e.type !== 'audio' || e.pcm.length % 2 === 0)).toBe(true);

    const turn2 = session.startTurn({ signal: new AbortController().signal });
    turn2.say('Again.');
    turn2.end();
    await collect(turn2);
    const contexts = new Set(server.messages.map((m) => m.context_id));
    expect(contexts.size).toBe(2);
    expect(server.upgrades).toHaveLength(1);
  });

  it('word alignment: chunk-relative character times become word starts in seconds from the turn start, across chunk boundaries', async () => {
    const session = await open();
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Hello wonderful world.');
    turn.end();
    const words = wordsOf(await collect(turn));
    // 10 ms per character; chunks of 8 characters cut "wonderful" in two.
    expect(words.map((w) => w.text)).toEqual(['Hello', 'wonderful', 'world.']);
    expect(words.map((w) => Math.round(w.start * 1000))).toEqual([0, 60, 160]);
  });

  it('barge-in: the turn ends at once without its queued audio and its context is closed; the session goes on', async () => {
    server.options.chunkIntervalMs = 20;
    const session = await open();
    const ac = new AbortController();
    const turn = session.startTurn({ signal: ac.signal });
    turn.say('A rather long sentence that takes a while to speak out loud.');
    const seen: TtsEvent[] = [];
    for await (const e of turn.events()) {
      seen.push(e);
      if (e.type === 'audio') ac.abort();
    }
    expect(audioBytes(seen)).toBeLessThan('A rather long sentence'.length * BYTES_PER_CHAR);
    const contextId = server.messages[0]?.context_id as string;
    await server.waitFor(() => server.closedContexts.includes(contextId), 1000, 'close_context');

    const next = session.startTurn({ signal: new AbortController().signal });
    next.say('Yes?');
    next.end();
    expect(audioBytes(await collect(next))).toBe('Yes? '.length * BYTES_PER_CHAR);
  });

  it('an error message → retryable ProviderError after the audio before it; the socket stays usable', async () => {
    server.faults.push({ kind: 'error', afterChunks: 1, message: 'generation failed here' });
    const session = await open();
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Something long enough for several chunks.');
    turn.end();
    const seen: TtsEvent[] = [];
    const err = await errorOf((async () => { for await (const e of turn.events()) seen.push(e); })());
    expect(err.provider).toBe('elevenlabs');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('generation failed here');
    expect(audioBytes(seen)).toBe(8 * BYTES_PER_CHAR);
    const turn2 = session.startTurn({ signal: new AbortController().signal });
    turn2.say('Fine.');
    turn2.end();
    expect(audioBytes(await collect(turn2))).toBe('Fine. '.length * BYTES_PER_CHAR);
    expect(server.upgrades).toHaveLength(1);
  });

  it('a socket dropped mid-turn → retryable ProviderError naming the host; the next turn redials', async () => {
    server.faults.push({ kind: 'close', afterChunks: 1 });
    const session = await open();
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Something long enough for several chunks.');
    turn.end();
    const err = await errorOf(collect(turn));
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(`127.0.0.1:${server.port}`);
    const turn2 = session.startTurn({ signal: new AbortController().signal });
    turn2.say('Back.');
    turn2.end();
    expect(audioBytes(await collect(turn2))).toBe('Back. '.length * BYTES_PER_CHAR);
    expect(server.upgrades).toHaveLength(2);
  });

  it('a stalled server → retryable ProviderError after the stall timeout, and the context is closed', async () => {
    server.faults.push({ kind: 'stall', afterChunks: 1 });
    const session = await open({ stallTimeoutMs: 200 });
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Something long enough for several chunks.');
    turn.end();
    const err = await errorOf(collect(turn));
    expect(err.message).toMatch(/ElevenLabs TTS stalled/);
    expect(err.retryable).toBe(true);
  });

  it('open() with a wrong key → non-retryable ProviderError naming ElevenLabs and the host, never the key', async () => {
    const wrong = 'xi_wrong_key_987654321';
    const err = await errorOf(createElevenLabsTts(settings({ apiKey: wrong })).open({ voiceId: '', language: '', signal: new AbortController().signal, log }));
    expect(err.message).toContain('ElevenLabs');
    expect(err.message).toContain('401');
    expect(err.message).toContain(`127.0.0.1:${server.port}`);
    expect(JSON.stringify(err) + err.message).not.toContain(wrong);
    expect(err.retryable).toBe(false);
  });

  it('refuses a missing key and a voice id that is not one, before dialling', async () => {
    const noKey = await errorOf(createElevenLabsTts(settings({ apiKey: '' })).open({ voiceId: '', language: '', signal: new AbortController().signal, log }));
    expect(noKey.message).toContain('ELEVENLABS_API_KEY');
    const bad = await errorOf(createElevenLabsTts(settings()).open({ voiceId: '../v1/x', language: '', signal: new AbortController().signal, log }));
    expect(bad.message).toMatch(/voice id/);
    expect(server.upgrades).toHaveLength(0);
  });

  it('close() ends live turns quietly, sends close_socket and releases the socket; idempotent', async () => {
    server.options.chunkIntervalMs = 20;
    const session = await open();
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('A sentence that is still being spoken when the call ends.');
    const done = collect(turn);
    await server.waitFor(() => server.messages.some((m) => m.flush === true), 1000, 'the text');
    await Promise.all([session.close(), session.close()]);
    await done;
    await server.waitFor(() => server.openConnections === 0, 2000, 'the socket to close');
    expect(server.messages.some((m) => m.close_socket === true)).toBe(true);
  });
});
