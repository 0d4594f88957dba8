// The OpenAI LLM provider driving the official SDK against the local fake chat-completions server: request
// shape, incremental streaming, tool-call reassembly, barge-in abort, and every failure mode of SPEC §13.

import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { ProviderError } from '../../src/errors.js';
import type { ChatMessage } from '../../src/model/pipecatcall.js';
import { createOpenAiLlm, type OpenAiLlmSettings } from '../../src/providers/llm/openai.js';
import type { LlmChunk, LlmClient, LlmTool } from '../../src/providers/types.js';
import { startFakeOpenAiServer, type FakeOpenAiServer } from '../fakes/openai-server.js';

const KEY = 'sk-test-0123456789abcdefSECRET';

let fake: FakeOpenAiServer;

beforeAll(async () => {
  fake = await startFakeOpenAiServer();
});

afterAll(async () => {
  await fake.close();
});

beforeEach(() => {
  fake.setHandler(() => ({ text: ['Hello', ' from', ' the', ' fake.'] }));
});

function llm(overrides: Partial<OpenAiLlmSettings> = {}): LlmClient {
  return createOpenAiLlm({ vendor: 'openai', model: 'gpt-4o-mini', apiKey: KEY, baseUrl: fake.baseUrl, ...overrides });
}

const USER: ChatMessage[] = [
  { role: 'system', content: 'You are a receptionist.' },
  { role: 'user', content: 'Hi there' },
];

async function collect(client: LlmClient, messages: readonly ChatMessage[], tools: readonly LlmTool[] = [], signal = new AbortController().signal): Promise<LlmChunk[]> {
  const out: LlmChunk[] = [];
  for await (const chunk of client.stream({ messages, tools, signal })) out.push(chunk);
  return out;
}

function textOf(chunks: readonly LlmChunk[]): string {
  return chunks.map((c) => (c.type === 'text' ? c.text : '')).join('');
}

/** Runs the stream to its end and returns the error it threw (failing if it did not throw). */
async function failureOf(client: LlmClient, messages: readonly ChatMessage[] = USER): Promise<ProviderError> {
  try {
    await collect(client, messages);
  } catch (err) {
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  }
  throw new Error('expected the stream to fail');
}

describe('openai LLM provider against the fake server', () => {
  it('sends model, messages unchanged (tool_calls + tool replies), function tools, stream:true and the bearer key', async () => {
    const before = fake.requests.length;
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are a receptionist.' },
      { role: 'user', content: 'Set my name to Bob' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'set_variables', arguments: '{"variables":{"name":"Bob"}}' } }],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '{"status":"ok"}' },
      { role: 'user', content: 'Thanks' },
    ];
    const tools: LlmTool[] = [
      {
        name: 'set_variables',
        description: 'Sets variables',
        parameters: { type: 'object', properties: { variables: { type: 'object' } }, required: ['variables'] },
      },
    ];
    const chunks = await collect(llm(), messages, tools);
    expect(textOf(chunks)).toBe('Hello from the fake.');

    const req = fake.requests[before];
    expect(req).toBeDefined();
    expect(req?.method).toBe('POST');
    expect(req?.url).toBe('/v1/chat/completions');
    expect(req?.headers.authorization).toBe(`Bearer ${KEY}`);
    const body = req?.body as Record<string, unknown>;
    expect(body['model']).toBe('gpt-4o-mini');
    expect(body['stream']).toBe(true);
    expect(body['messages']).toEqual(messages);
    expect(body['tools']).toEqual([
      {
        type: 'function',
        function: {
          name: 'set_variables',
          description: 'Sets variables',
          parameters: { type: 'object', properties: { variables: { type: 'object' } }, required: ['variables'] },
        },
      },
    ]);
  });

  it('omits tools when there are none', async () => {
    const before = fake.requests.length;
    await collect(llm(), USER);
    const body = fake.requests[before]?.body as Record<string, unknown>;
    expect('tools' in body).toBe(false);
  });

  it('delivers text deltas as they arrive, before later chunks are even sent', async () => {
    const before = fake.requests.length;
    fake.enqueue({ text: ['One', ' two', ' three'], delayMs: 150 });
    const arrivals: Array<{ text: string; at: number }> = [];
    for await (const c of llm().stream({ messages: USER, tools: [], signal: new AbortController().signal })) {
      if (c.type === 'text') arrivals.push({ text: c.text, at: performance.now() });
    }
    expect(arrivals.map((a) => a.text)).toEqual(['One', ' two', ' three']);
    const sent = fake.requests[before]?.chunkSentAt ?? [];
    // chunkSentAt[0] is the role chunk; [1..3] the content chunks.
    expect(sent.length).toBeGreaterThanOrEqual(4);
    expect(arrivals[0]!.at).toBeLessThan(sent[2]!);
    expect(arrivals[1]!.at).toBeLessThan(sent[3]!);
  });

  it('reassembles a tool call streamed in fragments, after any text', async () => {
    fake.enqueue({
      text: ['Let me', ' check.'],
      toolCalls: [{ id: 'call_abc', name: 'get_variables', arguments: ['{"', 'run_llm', '":', 'true}'] }],
    });
    const chunks = await collect(llm(), USER);
    expect(chunks).toEqual([
      { type: 'text', text: 'Let me' },
      { type: 'text', text: ' check.' },
      { type: 'tool_calls', calls: [{ id: 'call_abc', name: 'get_variables', arguments: '{"run_llm":true}' }] },
    ]);
  });

  it('reassembles two parallel tool calls by index, even with interleaved fragments', async () => {
    fake.enqueue({
      interleaveToolCalls: true,
      toolCalls: [
        { id: 'call_1', name: 'set_variables', arguments: ['{"variables":', '{"a":"1"}', '}'] },
        { id: 'call_2', name: 'send_message', arguments: ['{"text":', '"hi"}'] },
      ],
    });
    const chunks = await collect(llm(), USER);
    expect(chunks).toEqual([
      {
        type: 'tool_calls',
        calls: [
          { id: 'call_1', name: 'set_variables', arguments: '{"variables":{"a":"1"}}' },
          { id: 'call_2', name: 'send_message', arguments: '{"text":"hi"}' },
        ],
      },
    ]);
  });

  it('abort mid-stream ends the iteration at once, quietly, and the server sees the disconnect', async () => {
    const before = fake.requests.length;
    fake.enqueue({ text: ['First', ' second', ' third', ' fourth'], delayMs: 300 });
    const ac = new AbortController();
    const texts: string[] = [];
    let abortedAt = 0;
    for await (const c of llm().stream({ messages: USER, tools: [], signal: ac.signal })) {
      if (c.type === 'text') texts.push(c.text);
      if (texts.length === 1 && abortedAt === 0) {
        // Abort from outside the loop, while the iterator is waiting for the next network chunk.
        setTimeout(() => {
          abortedAt = performance.now();
          ac.abort();
        }, 20);
      }
    }
    const endedAfter = performance.now() - abortedAt;
    expect(abortedAt).toBeGreaterThan(0);
    expect(endedAfter).toBeLessThan(100);
    expect(texts).toEqual(['First']);
    const req = fake.requests[before];
    await expect(req?.ended).resolves.toBe('aborted');
    expect(fake.abortedCount).toBeGreaterThanOrEqual(1);
  });

  it('an already-aborted signal sends nothing and yields nothing', async () => {
    const before = fake.requests.length;
    const ac = new AbortController();
    ac.abort();
    expect(await collect(llm(), USER, [], ac.signal)).toEqual([]);
    expect(fake.requests.length).toBe(before);
  });

  it('abort while waiting for the response headers ends quietly', async () => {
    fake.enqueue({ hang: true });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const t0 = performance.now();
    expect(await collect(llm(), USER, [], ac.signal)).toEqual([]);
    expect(performance.now() - t0).toBeLessThan(200);
  });

  it('a consumer that stops early cancels the HTTP stream', async () => {
    const before = fake.requests.length;
    fake.enqueue({ text: ['a', 'b', 'c', 'd'], delayMs: 200 });
    for await (const c of llm().stream({ messages: USER, tools: [], signal: new AbortController().signal })) {
      if (c.type === 'text') break;
    }
    await expect(fake.requests[before]?.ended).resolves.toBe('aborted');
  });

  it('HTTP 500 → retryable ProviderError naming status and vendor, never the key', async () => {
    fake.enqueue({ error: { status: 500 } });
    const err = await failureOf(llm());
    expect(err.retryable).toBe(true);
    expect(err.stage).toBe('llm');
    expect(err.message).toContain('500');
    expect(err.message).toContain(`openai LLM at 127.0.0.1:${fake.port}`);
    expect(err.message).not.toContain(KEY);
  });

  it('HTTP 401 → non-retryable ProviderError; a key echoed by the server is redacted', async () => {
    fake.enqueue({ error: { status: 401, message: `Incorrect API key provided: ${KEY}.` } });
    const err = await failureOf(llm());
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('401');
    expect(err.message).toContain('Incorrect API key provided');
    expect(err.message).not.toContain(KEY);
    expect(JSON.stringify(err)).not.toContain(KEY);
  });

  it('HTTP 429 → retryable ProviderError, one request (no hidden SDK retries)', async () => {
    const before = fake.requests.length;
    fake.enqueue({ error: { status: 429, headers: { 'retry-after': '1' } } });
    const err = await failureOf(llm());
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('429');
    expect(fake.requests.length).toBe(before + 1);
  });

  it('connection refused → retryable ProviderError naming the host', async () => {
    const port = await freePort();
    const err = await failureOf(llm({ vendor: 'grok', baseUrl: `http://127.0.0.1:${port}/v1` }));
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(`grok LLM at 127.0.0.1:${port}`);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(err.message).not.toContain(KEY);
  });

  it('connection reset mid-stream → retryable ProviderError after the text already delivered', async () => {
    fake.enqueue({ text: ['partial', ' more'], fault: 'reset', faultAfter: 1 });
    const seen: string[] = [];
    let error: unknown;
    try {
      for await (const c of llm().stream({ messages: USER, tools: [], signal: new AbortController().signal })) {
        if (c.type === 'text') seen.push(c.text);
      }
    } catch (err) {
      error = err;
    }
    expect(seen).toEqual(['partial']);
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).retryable).toBe(true);
  });

  it('a malformed data: line → ProviderError', async () => {
    fake.enqueue({ text: ['ok', ' then'], fault: 'malformed', faultAfter: 1 });
    const err = await failureOf(llm());
    expect(err.message).toMatch(/malformed/);
  });

  it('an error event inside the stream → retryable ProviderError with the server message', async () => {
    fake.enqueue({ text: ['ok'], fault: 'error-event', faultAfter: 1 });
    const err = await failureOf(llm());
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('The server had an error');
  });

  it('a stream that ends with no finish_reason and no [DONE] → ProviderError (cut off)', async () => {
    fake.enqueue({ text: ['half'], finishReason: null, done: false });
    const err = await failureOf(llm());
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/no finish_reason/);
  });

  it('a finished stream without [DONE] is accepted', async () => {
    fake.enqueue({ text: ['All', ' done.'], done: false });
    expect(textOf(await collect(llm(), USER))).toBe('All done.');
  });

  it('stall before the first token → ProviderError within firstTokenTimeoutMs, request cancelled', async () => {
    const before = fake.requests.length;
    fake.enqueue({ text: ['late'], fault: 'stall', faultAfter: 0 });
    const t0 = performance.now();
    const err = await failureOf(llm({ firstTokenTimeoutMs: 300, idleTimeoutMs: 5000 }));
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(3000);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/no first token within 300 ms/);
    await expect(fake.requests[before]?.ended).resolves.toBe('aborted');
  });

  it('no response headers at all → ProviderError within firstTokenTimeoutMs', async () => {
    fake.enqueue({ hang: true });
    const t0 = performance.now();
    const err = await failureOf(llm({ firstTokenTimeoutMs: 300 }));
    expect(performance.now() - t0).toBeLessThan(800);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/300 ms/);
  });

  it('stall mid-stream → ProviderError within idleTimeoutMs, after the delivered text', async () => {
    const before = fake.requests.length;
    fake.enqueue({ text: ['one', ' two', ' three'], fault: 'stall', faultAfter: 2 });
    const seen: string[] = [];
    let error: unknown;
    let lastChunkAt = 0;
    try {
      for await (const c of llm({ firstTokenTimeoutMs: 5000, idleTimeoutMs: 300 }).stream({
        messages: USER,
        tools: [],
        signal: new AbortController().signal,
      })) {
        if (c.type === 'text') seen.push(c.text);
        lastChunkAt = performance.now();
      }
    } catch (err) {
      error = err;
    }
    const sinceLast = performance.now() - lastChunkAt;
    expect(seen).toEqual(['one', ' two']);
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).message).toMatch(/stalled \(no data for 300 ms\)/);
    expect(sinceLast).toBeGreaterThanOrEqual(290);
    expect(sinceLast).toBeLessThan(800);
    await expect(fake.requests[before]?.ended).resolves.toBe('aborted');
  });

  it('a slow consumer does not count as a stall', async () => {
    fake.enqueue({ text: ['a', 'b'] });
    const seen: string[] = [];
    for await (const c of llm({ idleTimeoutMs: 100, firstTokenTimeoutMs: 2000 }).stream({
      messages: USER,
      tools: [],
      signal: new AbortController().signal,
    })) {
      if (c.type === 'text') seen.push(c.text);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(seen).toEqual(['a', 'b']);
  });

  it('routes another vendor through its base URL (grok pointed at the fake)', async () => {
    const before = fake.requests.length;
    const grok = createOpenAiLlm({ vendor: 'grok', model: 'grok-3-mini', apiKey: 'xai-test-key-123456', baseUrl: fake.baseUrl });
    expect(grok.name).toBe('grok.grok-3-mini');
    expect(textOf(await collect(grok, USER))).toBe('Hello from the fake.');
    const req = fake.requests[before];
    expect(req?.headers.authorization).toBe('Bearer xai-test-key-123456');
    expect((req?.body as Record<string, unknown>)['model']).toBe('grok-3-mini');
  });

  it('works under a deeper base path too', async () => {
    const before = fake.requests.length;
    const client = llm({ baseUrl: `http://127.0.0.1:${fake.port}/openai/v1` });
    expect(textOf(await collect(client, USER))).toBe('Hello from the fake.');
    expect(fake.requests[before]?.url).toBe('/openai/v1/chat/completions');
  });
});

/** A port nobody listens on: bind one, note it, close it. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
