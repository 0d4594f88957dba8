// Every LLM vendor of ai-manager's list that the registry accepts, through the registry as a call builds it:
// the OpenAI-compatible ones reach their API with their own key (the fake stands in for each documented base
// URL), Anthropic goes through its own SDK, unsupported vendors are a clear 400, a missing key names its variable.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { BadRequestError, ProviderError } from '../../src/errors.js';
import { LLM_VENDORS, ProviderRegistry, parseLlmType } from '../../src/providers/registry.js';
import type { LlmChunk } from '../../src/providers/types.js';
import { FakeAnthropicServer } from '../fakes/anthropic-server.js';
import { FakeGeminiServer } from '../fakes/gemini-server.js';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../fakes/openai-server.js';

const COMPATIBLE = ['openai', 'grok', 'groq', 'openrouter', 'deepseek', 'mistral', 'cerebras', 'fireworks', 'perplexity', 'together', 'sambanova', 'nvidia', 'qwen'];
const envKey = (vendor: string): string => (vendor === 'grok' ? 'XAI_API_KEY' : `${vendor.toUpperCase()}_API_KEY`);
const keyOf = (vendor: string): string => `key-for-${vendor}-0123456789`;

let openai: FakeOpenAiServer;
let anthropic: FakeAnthropicServer;
let gemini: FakeGeminiServer;

beforeAll(async () => {
  [openai, anthropic, gemini] = await Promise.all([startFakeOpenAiServer(), FakeAnthropicServer.start(keyOf('anthropic')), FakeGeminiServer.start(keyOf('gemini'))]);
  openai.setHandler(() => ({ text: ['Hi.'] }));
});
afterAll(async () => {
  await Promise.all([openai.close(), anthropic.close(), gemini.close()]);
});

function registry(env: Record<string, string>): ProviderRegistry {
  const config = loadConfig({ env: { LOG_LEVEL: 'silent', ...env } });
  return new ProviderRegistry(config, { llmBaseUrl: (vendor) => (vendor === 'anthropic' ? anthropic.baseUrl : vendor === 'gemini' ? gemini.baseUrl : openai.baseUrl) });
}

async function collect(stream: AsyncIterable<LlmChunk>): Promise<LlmChunk[]> {
  const out: LlmChunk[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

describe('LLM vendors through the registry', () => {
  it.each(COMPATIBLE)('%s: OpenAI-compatible, its own key, a documented https base URL', async (vendor) => {
    expect(LLM_VENDORS[vendor]?.baseUrl).toMatch(/^https:\/\//);
    const env = Object.fromEntries(COMPATIBLE.map((v) => [envKey(v), keyOf(v)]));
    const before = openai.requests.length;
    const llm = registry(env).llmClient(`${vendor}.some-model`, '');
    expect(await collect(llm.stream({ messages: [{ role: 'user', content: 'hi' }], tools: [], signal: new AbortController().signal }))).toEqual([{ type: 'text', text: 'Hi.' }]);
    const req = openai.requests[before];
    expect(req?.headers.authorization).toBe(`Bearer ${keyOf(vendor)}`);
    expect((req?.body as { model: string }).model).toBe('some-model');
  });

  it("ai-manager's engine_key wins over the instance's key", async () => {
    const before = openai.requests.length;
    const llm = registry({ CEREBRAS_API_KEY: keyOf('cerebras') }).llmClient('cerebras:llama-4', 'engine-key-0123456789');
    await collect(llm.stream({ messages: [{ role: 'user', content: 'hi' }], tools: [], signal: new AbortController().signal }));
    expect(openai.requests[before]?.headers.authorization).toBe('Bearer engine-key-0123456789');
  });

  it('groq, openrouter, deepseek and mistral still take OPENAI_API_KEY when they have no key of their own', async () => {
    const before = openai.requests.length;
    await collect(registry({ OPENAI_API_KEY: 'sk-fallback-0123456789' }).llmClient('groq.llama', '').stream({ messages: [{ role: 'user', content: 'x' }], tools: [], signal: new AbortController().signal }));
    expect(openai.requests[before]?.headers.authorization).toBe('Bearer sk-fallback-0123456789');
  });

  it('anthropic goes through its own SDK and API', async () => {
    const before = anthropic.requests.length;
    anthropic.enqueue({ text: ['Hello from Claude.'] });
    const llm = registry({ ANTHROPIC_API_KEY: keyOf('anthropic') }).llmClient('anthropic.claude-sonnet-4-5', '');
    expect(llm.name).toBe('anthropic.claude-sonnet-4-5');
    expect(await collect(llm.stream({ messages: [{ role: 'user', content: 'hi' }], tools: [], signal: new AbortController().signal }))).toEqual([{ type: 'text', text: 'Hello from Claude.' }]);
    expect(anthropic.requests[before]?.body.model).toBe('claude-sonnet-4-5');
  });

  it('gemini goes through @google/genai and the Gemini API', async () => {
    const before = gemini.requests.length;
    gemini.enqueue({ text: ['Hello from Gemini.'] });
    const llm = registry({ GEMINI_API_KEY: keyOf('gemini') }).llmClient('gemini.gemini-2.5-flash', '');
    expect(await collect(llm.stream({ messages: [{ role: 'user', content: 'hi' }], tools: [], signal: new AbortController().signal }))).toEqual([{ type: 'text', text: 'Hello from Gemini.' }]);
    expect(gemini.requests[before]?.path).toBe('/v1beta/models/gemini-2.5-flash:streamGenerateContent');
  });

  it('a missing key names the variable to set; unsupported vendors are a 400 listing the supported ones', () => {
    expect(() => registry({}).llmClient('together.mixtral', '')).toThrow(ProviderError);
    expect(() => registry({}).llmClient('together.mixtral', '')).toThrow(/TOGETHER_API_KEY/);
    for (const vendor of ['aws', 'azure', 'dialogflow']) {
      expect(() => parseLlmType(`${vendor}.model`)).toThrow(BadRequestError);
      expect(() => parseLlmType(`${vendor}.model`)).toThrow(/known: local, openai, .*anthropic/);
    }
  });
});
