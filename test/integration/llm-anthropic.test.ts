// The Anthropic LLM through the official SDK against the local fake Messages API: streaming text, tools in both
// directions, the translated context, abort, stalls, HTTP and mid-stream errors, key redaction.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProviderError } from '../../src/errors.js';
import { CALL_CONNECTED, createAnthropicLlm, type AnthropicLlmSettings } from '../../src/providers/llm/anthropic.js';
import type { LlmChunk, LlmTool } from '../../src/providers/types.js';
import type { ChatMessage } from '../../src/model/pipecatcall.js';
import { FakeAnthropicServer } from '../fakes/anthropic-server.js';

const KEY = 'sk-ant-test-0123456789abcdef';
let fake: FakeAnthropicServer;

beforeAll(async () => {
  fake = await FakeAnthropicServer.start(KEY);
});
afterAll(async () => {
  await fake.close();
});

const llm = (over: Partial<AnthropicLlmSettings> = {}) =>
  createAnthropicLlm({ model: 'claude-test', apiKey: KEY, baseUrl: fake.baseUrl, firstTokenTimeoutMs: 5000, idleTimeoutMs: 5000, ...over });
const USER: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
const TOOL: LlmTool = { name: 'stop_service', description: 'Ends the AI talk', parameters: { type: 'object', properties: {} } };

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

describe('Anthropic LLM (official SDK ↔ fake Messages API)', () => {
  it('streams text deltas; sends the system prompt apart, the model, max_tokens and the key', async () => {
    const before = fake.requests.length;
    fake.enqueue({ text: ['Hello', ' there.'] });
    expect(await collect(USER)).toEqual([{ type: 'text', text: 'Hello' }, { type: 'text', text: ' there.' }]);
    const req = fake.requests[before];
    expect(req?.headers['x-api-key'] ?? req?.headers.authorization).toMatch(new RegExp(`^(Bearer )?${KEY}$`));
    expect(req?.body).toMatchObject({ model: 'claude-test', max_tokens: 1024, stream: true, system: 'Be brief.' });
    expect(req?.body.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }]);
  });

  it('the bot speaking first gets a user turn in front; tool calls and results are translated both ways', async () => {
    const before = fake.requests.length;
    fake.enqueue({ text: ['Ok.'] });
    const history: ChatMessage[] = [
      { role: 'system', content: 'S' },
      { role: 'assistant', content: 'Connecting you.', tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'connect_call', arguments: '{"x":1}' } }] },
      { role: 'tool', tool_call_id: 'toolu_1', content: '{"status":"ok"}' },
    ];
    await collect(history);
    expect(fake.requests[before]?.body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: CALL_CONNECTED }] },
      { role: 'assistant', content: [{ type: 'text', text: 'Connecting you.' }, { type: 'tool_use', id: 'toolu_1', name: 'connect_call', input: { x: 1 } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '{"status":"ok"}' }] },
    ]);
  });

  it('offers tools as input_schema and reassembles streamed tool_use input into complete tool calls', async () => {
    const before = fake.requests.length;
    fake.enqueue({ text: ['Bye.'], toolCalls: [{ id: 'toolu_9', name: 'stop_service', input: ['{"run', '_llm":', ' false}'] }] });
    const chunks = await collect(USER, [TOOL]);
    expect(chunks).toEqual([
      { type: 'text', text: 'Bye.' },
      { type: 'tool_calls', calls: [{ id: 'toolu_9', name: 'stop_service', arguments: '{"run_llm": false}' }] },
    ]);
    expect(fake.requests[before]?.body.tools).toEqual([{ name: 'stop_service', description: 'Ends the AI talk', input_schema: { type: 'object', properties: {} } }]);
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

  it('HTTP 500 → retryable, 401 → not retryable and the echoed key redacted', async () => {
    fake.enqueue({ error: { status: 500 } });
    const e500 = await failure(collect(USER));
    expect(e500.retryable).toBe(true);
    expect(e500.message).toContain('HTTP 500');
    expect(e500.message).toContain(`anthropic LLM at 127.0.0.1:${fake.port}`);
    const e401 = await failure(collect(USER, [], new AbortController().signal, llm({ apiKey: 'sk-ant-wrong-key-987654321' })));
    expect(e401.retryable).toBe(false);
    expect(e401.message).toContain('401');
    expect(e401.message).not.toContain('sk-ant-wrong-key-987654321');
  });

  it('a mid-stream error event and a stream cut before stop_reason → retryable errors', async () => {
    fake.enqueue({ text: ['partial'], errorEvent: true });
    const mid = await failure(collect(USER));
    expect(mid.retryable).toBe(true);
    expect(mid.message).toMatch(/Overloaded/);
    fake.enqueue({ text: ['partial'], stopReason: null });
    const cut = await failure(collect(USER));
    expect(cut.retryable).toBe(true);
    expect(cut.message).toMatch(/no stop_reason/);
  });

  it('no first token → stall error within firstTokenTimeoutMs; with retryBackoffMs a refused-then-OK request is retried once', async () => {
    fake.enqueue({ stall: true });
    const t0 = performance.now();
    const stall = await failure(collect(USER, [], new AbortController().signal, llm({ firstTokenTimeoutMs: 300 })));
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(stall.message).toMatch(/no first token within 300 ms/);

    const before = fake.requests.length;
    fake.enqueue({ error: { status: 503 } }, { text: ['Second try.'] });
    expect(await collect(USER, [], new AbortController().signal, llm({ retryBackoffMs: 10 }))).toEqual([{ type: 'text', text: 'Second try.' }]);
    expect(fake.requests.length).toBe(before + 2);
  });
});
