// The Cartesia TTS provider through the official SDK against the local fake Cartesia server: wire contents,
// contexts and continuations, word timestamps, cancel on barge-in, server errors, dropped sockets, bad keys.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ProviderError } from '../../src/errors.js';
import { createCartesiaTts, type CartesiaTtsSettings } from '../../src/providers/tts/cartesia.js';
import type { TtsEvent, TtsSession, TtsTurn } from '../../src/providers/types.js';
import { FakeCartesiaServer } from '../fakes/cartesia-server.js';

const KEY = 'sk_car_test_0123456789abcdef';
const VOICE = 'a0e99841-438c-4a64-b679-ae501e7d6091';
const BYTES_PER_CHAR = 320;
const log = pino({ level: 'silent' });

let server: FakeCartesiaServer;
const sessions: TtsSession[] = [];

beforeAll(async () => {
  server = await FakeCartesiaServer.start({ apiKey: KEY, bytesPerChar: BYTES_PER_CHAR, chunkBytes: 3200 });
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.upgrades.length = 0;
  server.messages.length = 0;
  server.cancels.length = 0;
  server.faults.length = 0;
  server.rejectUpgrades = null;
  server.options.realtime = false;
  server.options.honorCancel = true;
});
afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.close()));
});

function settings(over: Partial<CartesiaTtsSettings> = {}): CartesiaTtsSettings {
  return { apiKey: KEY, baseUrl: server.baseUrl, createConnection: server.createConnection, ...over };
}

async function open(over: Partial<CartesiaTtsSettings> = {}, language = 'en'): Promise<TtsSession> {
  const session = await createCartesiaTts(settings(over)).open({ voiceId: VOICE, language, signal: new AbortController().signal, log });
  sessions.push(session);
  return session;
}

async function collect(turn: TtsTurn): Promise<TtsEvent[]> {
  const out: TtsEvent[] = [];
  for await (const e of turn.events()) out.push(e);
  return out;
}

function audioBytes(events: TtsEvent[]): number {
  return events.reduce((n, e) => n + (e.type === 'audio' ? e.pcm.length : 0), 0);
}

function expectedBytes(...texts: string[]): number {
  return texts.join('').replace(/\s/g, '').length * BYTES_PER_CHAR;
}

async function errorOf(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

describe('Cartesia TTS provider (official SDK ↔ fake server)', () => {
  it('sends sonic-3, pcm_s16le/16000, the voice and language, one context per turn with continuations', async () => {
    const session = await open();
    expect(session.sampleRate).toBe(16_000);
    expect(session.name).toBe('cartesia');

    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Hello there.');
    turn.say('How are you today?');
    turn.say('Fine.');
    turn.end();
    turn.end(); // idempotent
    const events = await collect(turn);

    // The handshake as the SDK makes it: the key as a bearer token, the API version as a header.
    expect(server.upgrades).toHaveLength(1);
    const upgrade = server.upgrades[0];
    expect(upgrade?.path).toBe('/tts/websocket');
    expect(upgrade?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(upgrade?.headers['cartesia-version']).toMatch(/^\d{4}-\d{2}-\d{2}$/);

    const reqs = server.generationRequests;
    expect(reqs).toHaveLength(4);
    const contextId = reqs[0]?.context_id;
    expect(typeof contextId).toBe('string');
    for (const r of reqs) {
      expect(r).toMatchObject({
        model_id: 'sonic-3',
        voice: { mode: 'id', id: VOICE },
        output_format: { container: 'raw', encoding: 'pcm_s16le', sample_rate: 16_000 },
        language: 'en',
        add_timestamps: true,
        context_id: contextId,
      });
    }
    expect(reqs.map((r) => r.continue)).toEqual([true, true, true, false]);
    expect(reqs.map((r) => r.transcript)).toEqual(['Hello there. ', 'How are you today? ', 'Fine. ', '']);

    expect(audioBytes(events)).toBe(expectedBytes('Hello there.', 'How are you today?', 'Fine.'));
    for (const e of events) if (e.type === 'audio') expect(e.pcm.length % 2).toBe(0);

    const words = events.flatMap((e) => (e.type === 'words' ? e.words : []));
    expect(words.map((w) => w.text)).toEqual(['Hello', 'there.', 'How', 'are', 'you', 'today?', 'Fine.']);
    expect(words[0]?.start).toBe(0);
    for (let i = 1; i < words.length; i++) expect(words[i]?.start).toBeGreaterThan(words[i - 1]?.start ?? Infinity);
    // Word times are seconds of the turn's audio: "How" starts after the 11 characters of "Hello there.".
    expect(words[2]?.start).toBeCloseTo((11 * BYTES_PER_CHAR) / 2 / 16_000, 6);

    // The next turn: a fresh context on the same socket.
    const turn2 = session.startTurn({ signal: new AbortController().signal });
    turn2.say('Again.');
    turn2.end();
    expect(audioBytes(await collect(turn2))).toBe(expectedBytes('Again.'));
    expect(server.upgrades).toHaveLength(1);
    const ids = new Set(server.generationRequests.map((r) => r.context_id));
    expect(ids.size).toBe(2);
  });

  it('streams audio before end() and leaves out the language when none is set', async () => {
    const session = await open({ model: 'sonic-latest' }, '');
    const turn = session.startTurn({ signal: new AbortController().signal });
    const it = turn.events()[Symbol.asyncIterator]();
    turn.say('First sentence.');
    const first = await it.next();
    expect(first.done).toBe(false);
    turn.say('Second one.');
    turn.end();
    const rest: TtsEvent[] = [];
    for (let r = await it.next(); r.done !== true; r = await it.next()) rest.push(r.value);
    expect(audioBytes([first.value as TtsEvent, ...rest])).toBe(expectedBytes('First sentence.', 'Second one.'));
    expect(server.generationRequests[0]?.model_id).toBe('sonic-latest');
    expect(server.generationRequests[0]).not.toHaveProperty('language');
  });

  it('a turn ended without any say() finishes at once and sends nothing', async () => {
    const session = await open();
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.end();
    expect(await collect(turn)).toEqual([]);
    expect(server.messages).toHaveLength(0);
  });

  it('abort sends Cartesia cancel for the context and ends events() promptly, with no late audio', async () => {
    server.options.realtime = true; // 100 ms per chunk
    server.options.honorCancel = false; // the server keeps sending the context's audio after the cancel
    const session = await open();
    const ac = new AbortController();
    const turn = session.startTurn({ signal: ac.signal });
    turn.say('This is a long reply that the caller is going to interrupt right in the middle of it.');
    turn.end();
    const seen: TtsEvent[] = [];
    let abortedAt = 0;
    for await (const e of turn.events()) {
      seen.push(e);
      if (e.type === 'audio' && abortedAt === 0) {
        abortedAt = performance.now();
        ac.abort();
      }
    }
    const endedAfter = performance.now() - abortedAt;
    expect(endedAfter).toBeLessThan(50);
    expect(seen.filter((e) => e.type === 'audio')).toHaveLength(1);
    const contextId = server.generationRequests[0]?.context_id as string;
    await server.waitFor(() => server.cancels.includes(contextId), 1000, 'the cancel');
    expect(server.messages.find((m) => m.message.cancel === true)?.message).toEqual({ cancel: true, context_id: contextId });

    // Late chunks of the cancelled context keep arriving on the socket; they must not leak into the next turn.
    const turn2 = session.startTurn({ signal: new AbortController().signal });
    turn2.say('Okay.');
    turn2.end();
    const chunksBefore = server.chunksSent.get(contextId) ?? 0;
    expect(audioBytes(await collect(turn2))).toBe(expectedBytes('Okay.'));
    expect(server.chunksSent.get(contextId) ?? 0).toBeGreaterThan(chunksBefore);
  });

  it('an abort before the first say sends nothing; an already aborted signal gives an empty turn', async () => {
    const session = await open();
    const ac = new AbortController();
    ac.abort();
    const turn = session.startTurn({ signal: ac.signal });
    turn.say('Never spoken.');
    turn.end();
    expect(await collect(turn)).toEqual([]);
    expect(server.messages).toHaveLength(0);
  });

  it("a server error message → ProviderError from events(), after the audio before it; the socket stays usable", async () => {
    server.faults.push({ kind: 'error', afterChunks: 1, message: 'model exploded', statusCode: 500 });
    const session = await open();
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Something long enough for more than one chunk of audio.');
    turn.end();
    const seen: TtsEvent[] = [];
    const err = await errorOf(
      (async () => {
        for await (const e of turn.events()) seen.push(e);
      })(),
    );
    expect(err.provider).toBe('cartesia');
    expect(err.stage).toBe('tts');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('model exploded');
    expect(err.message).toContain('500');
    expect(audioBytes(seen)).toBe(3200);

    const turn2 = session.startTurn({ signal: new AbortController().signal });
    turn2.say('Fine now.');
    turn2.end();
    expect(audioBytes(await collect(turn2))).toBe(expectedBytes('Fine now.'));
    expect(server.upgrades).toHaveLength(1);
  });

  it('a socket closed mid-turn → retryable ProviderError; the next turn reconnects', async () => {
    server.faults.push({ kind: 'close', afterChunks: 2 });
    const session = await open();
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Something long enough for more than two chunks of audio, surely.');
    turn.end();
    const err = await errorOf(collect(turn));
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(`127.0.0.1:${server.port}`);

    const turn2 = session.startTurn({ signal: new AbortController().signal });
    turn2.say('Back again.');
    turn2.end();
    expect(audioBytes(await collect(turn2))).toBe(expectedBytes('Back again.'));
    expect(server.upgrades).toHaveLength(2);
  });

  it('a closing handshake mid-turn (code 1011) and a malformed message both fail the turn; later turns work', async () => {
    const session = await open();
    for (const fault of [{ kind: 'close', code: 1011, afterChunks: 1 }, { kind: 'malformed', afterChunks: 1 }] as const) {
      server.faults.push(fault);
      const turn = session.startTurn({ signal: new AbortController().signal });
      turn.say('Something long enough for more than one chunk of audio.');
      turn.end();
      const err = await errorOf(collect(turn));
      expect(err.retryable).toBe(true);
      const next = session.startTurn({ signal: new AbortController().signal });
      next.say('Next.');
      next.end();
      expect(audioBytes(await collect(next))).toBe(expectedBytes('Next.'));
    }
    expect(server.upgrades).toHaveLength(3);
  });

  it('a stalled server → retryable ProviderError after the stall timeout, and the context is cancelled', async () => {
    server.faults.push({ kind: 'stall', afterChunks: 1 });
    const session = await open({ stallTimeoutMs: 200 });
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Something long enough for more than one chunk of audio.');
    turn.end();
    const t0 = performance.now();
    const err = await errorOf(collect(turn));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err.message).toMatch(/stalled/);
    const contextId = server.generationRequests[0]?.context_id as string;
    await server.waitFor(() => server.cancels.includes(contextId), 1000, 'the cancel');
  });

  it('open() with a wrong key (401) → non-retryable ProviderError naming Cartesia and the host, never the key', async () => {
    const wrongKey = 'sk_car_wrong_key_987654321';
    const err = await errorOf(createCartesiaTts(settings({ apiKey: wrongKey })).open({ voiceId: VOICE, language: '', signal: new AbortController().signal, log }));
    expect(err.message).toContain('Cartesia');
    expect(err.message).toContain(`127.0.0.1:${server.port}`);
    expect(err.message).toContain('401');
    expect(err.message).not.toContain(wrongKey);
    expect(JSON.stringify(err)).not.toContain(wrongKey);
    expect(err.retryable).toBe(false);
  });

  it('open() against a 500 upgrade or a refused port → ProviderError naming the host', async () => {
    server.rejectUpgrades = 500;
    const err = await errorOf(createCartesiaTts(settings()).open({ voiceId: VOICE, language: '', signal: new AbortController().signal, log }));
    expect(err.message).toContain(`127.0.0.1:${server.port}`);
    expect(err.message).toContain('500');
    expect(err.message).not.toContain(KEY);

    const closed = await FakeCartesiaServer.start();
    const port = closed.port;
    await closed.close();
    const refused = await errorOf(
      createCartesiaTts({ apiKey: KEY, baseUrl: `http://127.0.0.1:${port}`, createConnection: closed.createConnection }).open({
        voiceId: VOICE,
        language: '',
        signal: new AbortController().signal,
        log,
      }),
    );
    expect(refused.message).toContain(`127.0.0.1:${port}`);
    expect(refused.message).toMatch(/ECONNREFUSED/);
    expect(refused.retryable).toBe(true);
  });

  it('a reconnect that fails makes the turn fail with a ProviderError; a later one succeeds', async () => {
    const session = await open();
    server.dropConnections();
    await server.waitFor(() => server.openConnections === 0);
    server.rejectUpgrades = 503;
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Hello.');
    turn.end();
    const err = await errorOf(collect(turn));
    expect(err.message).toContain('503');
    server.rejectUpgrades = null;
    const turn2 = session.startTurn({ signal: new AbortController().signal });
    turn2.say('Hello.');
    turn2.end();
    expect(audioBytes(await collect(turn2))).toBe(expectedBytes('Hello.'));
  });

  it('close() ends active turns quietly and leaves no socket or timer behind', async () => {
    const count = (): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
      return out;
    };
    const before = count();
    server.options.realtime = true;
    const session = await createCartesiaTts(settings({ stallTimeoutMs: 5000 })).open({ voiceId: VOICE, language: 'en', signal: new AbortController().signal, log });
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('A reply that is still playing when the call ends.');
    const events = collect(turn);
    await server.waitFor(() => (server.chunksSent.get(server.generationRequests[0]?.context_id as string) ?? 0) > 0);
    await session.close();
    await session.close(); // idempotent
    expect(await events).toBeDefined();
    await server.waitFor(() => server.openConnections === 0, 2000, 'the server to see the close');
    await server.waitFor(() => {
      const after = count();
      return (after.TCPSocketWrap ?? 0) <= (before.TCPSocketWrap ?? 0) && (after.Timeout ?? 0) <= (before.Timeout ?? 0);
    }, 2000, 'sockets and timers to be released');
  });

  it('aborting the session signal closes the session', async () => {
    const ac = new AbortController();
    const session = await createCartesiaTts(settings()).open({ voiceId: VOICE, language: '', signal: ac.signal, log });
    expect(server.openConnections).toBe(1);
    ac.abort();
    await server.waitFor(() => server.openConnections === 0, 2000, 'the socket to close');
    const turn = session.startTurn({ signal: new AbortController().signal });
    turn.say('Too late.');
    turn.end();
    expect(await collect(turn)).toEqual([]);
  });
});
