// The retry-once policy every call's LLM gets from the registry, against the OpenAI fake through the official SDK:
// a retryable failure before the first token (5xx, 429, a reset) is retried once and the caller sees one clean
// reply; a 400, a second failure, a stall, and anything after the first token are not retried.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { ProviderError } from '../../src/errors.js';
import { LLM_RETRY_BACKOFF_MS, ProviderRegistry } from '../../src/providers/registry.js';
import type { LlmChunk, LlmClient } from '../../src/providers/types.js';
import type { LlmPolicy } from '../../src/providers/base/llm.js';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../fakes/openai-server.js';

let openai: FakeOpenAiServer;
let before = 0;

beforeAll(async () => {
  openai = await startFakeOpenAiServer();
});
afterAll(async () => {
  await openai.close();
});
beforeEach(() => {
  before = openai.requests.length;
});

function llm(llmPolicy?: LlmPolicy): LlmClient {
  const config = loadConfig({ env: { LOG_LEVEL: 'silent', OPENAI_API_KEY: 'sk-retry-test-0123456789' } });
  return new ProviderRegistry(config, { llmBaseUrl: () => openai.baseUrl, ...(llmPolicy !== undefined ? { llmPolicy } : {}) }).llmClient('openai.gpt-4o-mini', '');
}

async function run(client: LlmClient): Promise<{ chunks: LlmChunk[]; error: unknown }> {
  const chunks: LlmChunk[] = [];
  try {
    for await (const c of client.stream({ messages: [{ role: 'user', content: 'hi' }], tools: [], signal: new AbortController().signal })) chunks.push(c);
    return { chunks, error: undefined };
  } catch (error) {
    return { chunks, error };
  }
}

const requests = (): number => openai.requests.length - before;

describe('LLM retry-once (registry policy) against the OpenAI fake', () => {
  it('is on by default with a short backoff', () => {
    expect(LLM_RETRY_BACKOFF_MS).toBeGreaterThan(0);
    expect(LLM_RETRY_BACKOFF_MS).toBeLessThanOrEqual(1000);
  });

  it.each([503, 500, 429])('HTTP %i, then success: retried once, the caller sees only the one reply', async (status) => {
    openai.enqueue({ error: { status } }, { text: ['Second', ' try.'] });
    const { chunks, error } = await run(llm());
    expect(error).toBeUndefined();
    expect(chunks.map((c) => (c.type === 'text' ? c.text : c.type)).join('')).toBe('Second try.');
    expect(requests()).toBe(2);
    // The retry is the same request.
    expect(openai.requests[before + 1]?.body).toEqual(openai.requests[before]?.body);
  });

  it('a connection reset before the first token is retried', async () => {
    openai.enqueue({ text: ['never sent'], fault: 'reset', faultAfter: 0 }, { text: ['Recovered.'] });
    const { chunks, error } = await run(llm());
    expect(error).toBeUndefined();
    expect(chunks).toEqual([{ type: 'text', text: 'Recovered.' }]);
    expect(requests()).toBe(2);
  });

  it.each([400, 401, 404])('HTTP %i is not retried: one request, a non-retryable ProviderError', async (status) => {
    openai.enqueue({ error: { status } }); // a retry would get the fake's default reply
    const { chunks, error } = await run(llm());
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).retryable).toBe(false);
    expect(chunks).toEqual([]);
    expect(requests()).toBe(1);
  });

  it('only once: a second retryable failure is the error', async () => {
    openai.enqueue({ error: { status: 503 } }, { error: { status: 502 } }); // a retry would get the fake's default reply
    const { error } = await run(llm());
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as Error).message).toContain('502');
    expect(requests()).toBe(2);
  });

  it('never after the first token reached the caller', async () => {
    openai.enqueue({ text: ['A', 'B', 'C'], fault: 'reset', faultAfter: 1 }); // a retry would get the fake's default reply
    const { chunks, error } = await run(llm());
    expect(error).toBeInstanceOf(ProviderError);
    expect(chunks).toEqual([{ type: 'text', text: 'A' }]);
    expect(requests()).toBe(1);
  });

  it('never after a stall: the first-token budget is spent', async () => {
    openai.enqueue({ hang: true }); // a retry would get the fake's default reply
    const { error } = await run(llm({ firstTokenTimeoutMs: 200 }));
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as Error).message).toContain('no first token within 200 ms');
    expect(requests()).toBe(1);
  });
});
