// The provider bases count every provider failure exactly once, with the provider's name and stage, and count
// the failures they recovered from by retrying: through the real SDKs against the local fakes, with a recording
// metrics port in place of prom-client. Also the one retry rule in action: a retryable LLM failure before the
// first token is retried once; a 4xx, or a failure after the first token, is not.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ProviderError } from '../../src/errors.js';
import type { ProviderMetrics } from '../../src/providers/base/metrics.js';
import { meteredStt } from '../../src/providers/base/stt.js';
import { meteredTts } from '../../src/providers/base/tts.js';
import { createOpenAiLlm } from '../../src/providers/llm/openai.js';
import { createDeepgramStt } from '../../src/providers/stt/deepgram.js';
import { createCartesiaTts } from '../../src/providers/tts/cartesia.js';
import type { LlmClient, SttStream, TtsSession } from '../../src/providers/types.js';
import { FakeCartesiaServer } from '../fakes/cartesia-server.js';
import { FakeDeepgramServer } from '../fakes/deepgram-server.js';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../fakes/openai-server.js';
import { waitUntil } from '../helpers/wait.js';

const log = pino({ level: 'silent' });
const OPENAI_KEY = 'sk-metrics-test-0123456789';
const DEEPGRAM_KEY = 'dg_metrics_test_0123456789';
const CARTESIA_KEY = 'sk_car_metrics_0123456789';
const FRAME = new Int16Array(320).map((_, i) => Math.round(1000 * Math.sin((2 * Math.PI * 440 * i) / 16_000)));

class RecordingMetrics implements ProviderMetrics {
  readonly failures: string[] = [];
  readonly retries: string[] = [];
  failed(provider: string, stage: string): void {
    this.failures.push(`${provider}/${stage}`);
  }
  retried(provider: string, stage: string): void {
    this.retries.push(`${provider}/${stage}`);
  }
}

let openai: FakeOpenAiServer;
let deepgram: FakeDeepgramServer;
let cartesia: FakeCartesiaServer;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  [openai, deepgram, cartesia] = await Promise.all([
    startFakeOpenAiServer(),
    FakeDeepgramServer.start({ apiKey: DEEPGRAM_KEY }),
    FakeCartesiaServer.start({ apiKey: CARTESIA_KEY }),
  ]);
});
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
  deepgram.reset();
  cartesia.faults.length = 0;
});
afterAll(async () => {
  await Promise.allSettled([openai?.close(), deepgram?.close(), cartesia?.close()]);
});

function llm(metrics: ProviderMetrics, retryBackoffMs?: number): LlmClient {
  return createOpenAiLlm({
    vendor: 'openai',
    model: 'gpt-4o-mini',
    apiKey: OPENAI_KEY,
    baseUrl: openai.baseUrl,
    metrics,
    ...(retryBackoffMs === undefined ? {} : { retryBackoffMs }),
  });
}

async function run(client: LlmClient): Promise<{ text: string; error: unknown }> {
  let text = '';
  try {
    for await (const c of client.stream({ messages: [{ role: 'user', content: 'hi' }], tools: [], signal: new AbortController().signal })) {
      if (c.type === 'text') text += c.text;
    }
    return { text, error: null };
  } catch (error) {
    return { text, error };
  }
}

describe('LLM base', () => {
  it('counts a retryable failure before the first token once, retries it once, and the retry answers', async () => {
    const m = new RecordingMetrics();
    const before = openai.requests.length;
    openai.enqueue({ error: { status: 503 } }, { text: ['Second ', 'try.'] });
    const { text, error } = await run(llm(m, 10));
    expect(error).toBeNull();
    expect(text).toBe('Second try.');
    expect(openai.requests.length - before).toBe(2);
    expect(m.failures).toEqual(['openai.gpt-4o-mini/llm']);
    expect(m.retries).toEqual(['openai.gpt-4o-mini/llm']);
  });

  it('does not retry a 400 (not retryable): one request, one failure counted', async () => {
    const m = new RecordingMetrics();
    const before = openai.requests.length;
    openai.enqueue({ error: { status: 400, message: 'bad request' } });
    const { error } = await run(llm(m, 10));
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).retryable).toBe(false);
    expect(openai.requests.length - before).toBe(1);
    expect(m.failures).toEqual(['openai.gpt-4o-mini/llm']);
    expect(m.retries).toEqual([]);
  });

  it('does not retry after the first token: the partial answer reached the caller', async () => {
    const m = new RecordingMetrics();
    const before = openai.requests.length;
    openai.enqueue({ text: ['Par', 'tial'], fault: 'error-event', faultAfter: 1 });
    const { text, error } = await run(llm(m, 10));
    expect(text).toBe('Par');
    expect(error).toBeInstanceOf(ProviderError);
    expect(openai.requests.length - before).toBe(1);
    expect(m.failures).toEqual(['openai.gpt-4o-mini/llm']);
    expect(m.retries).toEqual([]);
  });

  it('without a retry policy, two failures in a row are two failed runs, each counted once', async () => {
    const m = new RecordingMetrics();
    openai.enqueue({ error: { status: 500 } }, { error: { status: 500 } });
    const client = llm(m);
    expect((await run(client)).error).toBeInstanceOf(ProviderError);
    expect((await run(client)).error).toBeInstanceOf(ProviderError);
    expect(m.failures).toEqual(['openai.gpt-4o-mini/llm', 'openai.gpt-4o-mini/llm']);
  });
});

describe('STT base (Deepgram)', () => {
  async function open(m: RecordingMetrics, signal = new AbortController().signal): Promise<{ stream: SttStream; errors: Error[]; fatals: Error[] }> {
    const errors: Error[] = [];
    const fatals: Error[] = [];
    const provider = meteredStt(createDeepgramStt({ apiKey: DEEPGRAM_KEY, baseUrl: deepgram.url, closeGraceMs: 200 }), m);
    const stream = await provider.open({
      language: 'en-US',
      signal,
      log,
      onTranscript: () => undefined,
      onError: (e) => errors.push(e),
      onFatal: (e) => fatals.push(e),
    });
    closers.push(() => stream.close());
    return { stream, errors, fatals };
  }

  async function feed(stream: SttStream, frames: number): Promise<void> {
    for (let i = 0; i < frames; i++) {
      stream.write(FRAME);
      await new Promise((r) => setImmediate(r));
    }
  }

  it('a refused open is counted once, under the provider and stage', async () => {
    const m = new RecordingMetrics();
    deepgram.refuseUpgrades(401, 1);
    await expect(open(m)).rejects.toBeInstanceOf(ProviderError);
    expect(m.failures).toEqual(['deepgram/stt']);
  });

  it('an open abandoned because the call ended is not a provider failure', async () => {
    const m = new RecordingMetrics();
    const ac = new AbortController();
    ac.abort();
    await expect(open(m, ac.signal)).rejects.toBeInstanceOf(ProviderError);
    expect(m.failures).toEqual([]);
  });

  it('a malformed message mid-call is counted once and reported; the stream goes on', async () => {
    const m = new RecordingMetrics();
    const h = await open(m);
    await feed(h.stream, 5);
    deepgram.sendRaw('this is not JSON');
    await waitUntil('the malformed message to be reported', () => h.errors.length === 1);
    expect(m.failures).toEqual(['deepgram/stt']);
    expect(h.fatals).toEqual([]);
  });

  it('a drop mid-call is counted once and reconnected once (a retry); a second drop is fatal, counted once more', async () => {
    const m = new RecordingMetrics();
    deepgram.dropAfter(10 * 640, 'always');
    const h = await open(m);
    for (let i = 0; i < 200 && h.fatals.length === 0; i++) await feed(h.stream, 5);
    await waitUntil('the second drop to be fatal', () => h.fatals.length === 1);
    expect(deepgram.connections.length).toBe(2);
    expect(m.retries).toEqual(['deepgram/stt']);
    expect(m.failures).toEqual(['deepgram/stt', 'deepgram/stt']);
    expect(h.errors).toEqual([]);
  });
});

describe('TTS base (Cartesia)', () => {
  async function open(m: RecordingMetrics): Promise<TtsSession> {
    const provider = meteredTts(createCartesiaTts({ apiKey: CARTESIA_KEY, baseUrl: cartesia.baseUrl, createConnection: cartesia.createConnection }), m);
    const session = await provider.open({ voiceId: 'voice-1', language: 'en', signal: new AbortController().signal, log });
    closers.push(() => session.close());
    return session;
  }

  it('a turn the provider fails is counted once; the next turn is not', async () => {
    const m = new RecordingMetrics();
    const session = await open(m);
    cartesia.faults.push({ kind: 'error', message: 'voice not found' });
    const failed = session.startTurn({ signal: new AbortController().signal });
    failed.say('Hello there.');
    failed.end();
    await expect((async () => {
      for await (const _ of failed.events()) {
        // drain
      }
    })()).rejects.toBeInstanceOf(ProviderError);
    expect(m.failures).toEqual(['cartesia/tts']);
    const ok = session.startTurn({ signal: new AbortController().signal });
    ok.say('Hello again.');
    ok.end();
    let audio = 0;
    for await (const e of ok.events()) if (e.type === 'audio') audio += e.pcm.length;
    expect(audio).toBeGreaterThan(0);
    expect(m.failures).toEqual(['cartesia/tts']);
  });

  it('acts on retryable: after a dropped socket the next turn redials; a rejected key (401) stops the redials', async () => {
    const m = new RecordingMetrics();
    const session = await open(m);
    const speak = async (text: string): Promise<unknown> => {
      const turn = session.startTurn({ signal: new AbortController().signal });
      turn.say(text);
      turn.end();
      try {
        for await (const _ of turn.events()) {
          // drain
        }
        return null;
      } catch (err) {
        return err;
      }
    };
    // The socket is cut mid-turn: that turn fails (retryable), and the next turn dials again.
    cartesia.faults.push({ kind: 'close' });
    const dropped = await speak('First.');
    expect((dropped as ProviderError).retryable).toBe(true);
    const upgrades = cartesia.upgrades.length;
    cartesia.rejectUpgrades = 401;
    try {
      const rejected = await speak('Second.');
      expect(cartesia.upgrades.length).toBe(upgrades + 1);
      expect((rejected as ProviderError).retryable).toBe(false);
      expect((rejected as ProviderError).message).toMatch(/rejected the API key/);
      // Not retryable: the next turn fails with the same error at once, without dialling.
      const third = await speak('Third.');
      expect(third).toBe(rejected);
      expect(cartesia.upgrades.length).toBe(upgrades + 1);
    } finally {
      cartesia.rejectUpgrades = null;
    }
    expect(m.failures).toEqual(['cartesia/tts', 'cartesia/tts', 'cartesia/tts']);
  });

  it('a session refused at the upgrade is counted once', async () => {
    const m = new RecordingMetrics();
    cartesia.rejectUpgrades = 401;
    try {
      await expect(open(m)).rejects.toBeInstanceOf(ProviderError);
    } finally {
      cartesia.rejectUpgrades = null;
    }
    expect(m.failures).toEqual(['cartesia/tts']);
  });
});
