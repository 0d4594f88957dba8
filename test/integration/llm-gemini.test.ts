// The Gemini LLM through the official @google/genai SDK against the local fake: streaming text, tools in both
// directions, the translated context, abort, errors, stalls, key redaction.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProviderError } from '../../src/errors.js';
import { createGeminiLlm, type GeminiLlmSettings } from '../../src/providers/llm/gemini.js';
import type { LlmChunk, LlmTool } from '../../src/providers/types.js';
import type { ChatMessage } from '../../src/model/pipecatcall.js';
import { FakeGeminiServer } from '../fakes/gemini-server.js';

const KEY = 'AIza-test-key-0123456789';
let fake: FakeGeminiServer;

beforeAll(async () => {
  fake = await FakeGeminiServer.start(KEY);
});
afterAll(async () => {
  await fake.close();
});

const llm = (over: Partial<GeminiLlmSettings> = {}) =>
  createGeminiLlm({ model: 'gemini-test', apiKey: KEY, baseUrl: fake.baseUrl, firstTokenTimeoutMs: 5000, idleTimeoutMs: 5000, ...over });
const USER: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
const TOOL: LlmTool = { name: 'set_variables', description: 'Sets variables', parameters: { type: 'object', properties: { variables: { type: 'object' } } } };

async function collect(messages: readonly ChatMessage[], tools: LlmTool[] = [], signal = new AbortController().signal, client = llm()): Promise<LlmChunk[]> {
  const out: LlmChunk[] = [];
  for await (const c of client.stream({ messages, tools, signal })) out.push(c);
  return out;
}

async function failure(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

describe('Gemini LLM (official SDK ↔ fake API)', () => {
  it('streams text; sends the model in the path, the key header, systemInstruction and user contents', async () => {
    const before = fake.requests.length;
    fake.enqueue({ text: ['Hello', ' there.'] });
    expect(await collect(USER)).toEqual([{ type: 'text', text: 'Hello' }, { type: 'text', text: ' there.' }]);
    const req = fake.requests[before];
    expect(req?.path).toBe('/v1beta/models/gemini-test:streamGenerateContent');
    expect(req?.headers['x-goog-api-key']).toBe(KEY);
    expect(JSON.stringify(req?.body.systemInstruction)).toContain('Be brief.');
    expect(req?.body.contents).toEqual([{ role: 'user', parts: [{ text: 'Hi' }] }]);
  });

  it('function calls come back as tool calls with ids; tool results go out as functionResponse named after the call', async () => {
    const before = fake.requests.length;
    fake.enqueue({ text: ['Saving.'], functionCalls: [{ name: 'set_variables', args: { variables: { a: '1' } } }] });
    const chunks = await collect(USER, [TOOL]);
    const calls = chunks.find((c) => c.type === 'tool_calls');
    expect(calls).toEqual({ type: 'tool_calls', calls: [{ id: expect.stringMatching(/^gemini_call_\d+$/) as unknown, name: 'set_variables', arguments: '{"variables":{"a":"1"}}' }] });
    const decl = (fake.requests[before]?.body.tools as Array<{ functionDeclarations: Array<{ name: string }> }>)[0]?.functionDeclarations[0];
    expect(decl?.name).toBe('set_variables');

    fake.enqueue({ text: ['Done.'] });
    const next = fake.requests.length;
    await collect([
      ...USER,
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'set_variables', arguments: '{"variables":{}}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'ok' },
    ]);
    expect(fake.requests[next]?.body.contents).toEqual([
      { role: 'user', parts: [{ text: 'Hi' }] },
      { role: 'model', parts: [{ functionCall: { id: 'c1', name: 'set_variables', args: { variables: {} } } }] },
      { role: 'user', parts: [{ functionResponse: { id: 'c1', name: 'set_variables', response: { result: 'ok' } } }] },
    ]);
  });

  it('abort mid-stream ends quietly and cancels the HTTP stream', async () => {
    const before = fake.requests.length;
    fake.enqueue({ text: ['a', 'b', 'c', 'd'], delayMs: 100 });
    const ac = new AbortController();
    const seen: string[] = [];
    for await (const c of llm().stream({ messages: USER, tools: [], signal: ac.signal })) {
      if (c.type === 'text') seen.push(c.text);
      ac.abort();
    }
    expect(seen).toEqual(['a']);
    await expect(fake.requests[before]?.ended).resolves.toBe('aborted');
  });

  it('HTTP 500 → retryable in one request, a bad key (400) → not retryable and redacted, a cut stream and a stall → retryable', async () => {
    const before = fake.requests.length;
    fake.enqueue({ error: { status: 500 } });
    const e500 = await failure(collect(USER));
    expect(e500.retryable).toBe(true);
    expect(e500.message).toContain('HTTP 500');
    expect(fake.requests.length).toBe(before + 1);

    const wrong = 'AIza-wrong-key-987654321';
    const bad = await failure(collect(USER, [], new AbortController().signal, llm({ apiKey: wrong })));
    expect(bad.retryable).toBe(false);
    expect(bad.message).not.toContain(wrong);

    fake.enqueue({ text: ['partial'], finishReason: null });
    expect((await failure(collect(USER))).message).toMatch(/no finishReason/);
    fake.enqueue({ stall: true });
    const stall = await failure(collect(USER, [], new AbortController().signal, llm({ firstTokenTimeoutMs: 400 })));
    expect(stall.message).toMatch(/no first token within 400 ms/);
  });
});
