// The offline `local.echo` LLM: greeting when it speaks first, echo of the last user text, DTMF, and abort.

import { describe, expect, it } from 'vitest';

import type { ChatMessage } from '../../src/model/pipecatcall.js';
import { ECHO_GREETING, createEchoLlm } from '../../src/providers/llm/echo.js';
import type { LlmChunk } from '../../src/providers/types.js';

async function run(messages: ChatMessage[], signal = new AbortController().signal): Promise<LlmChunk[]> {
  const out: LlmChunk[] = [];
  for await (const c of createEchoLlm().stream({ messages, tools: [], signal })) out.push(c);
  return out;
}

function text(chunks: LlmChunk[]): string {
  return chunks.map((c) => (c.type === 'text' ? c.text : '')).join('');
}

describe('local.echo LLM', () => {
  it('is named local.echo', () => {
    expect(createEchoLlm().name).toBe('local.echo');
  });

  it('greets when the last message is not from the user (the bot speaks first)', async () => {
    expect(ECHO_GREETING).toBe('Hello! This is the echo bot. Say something and I will repeat it.');
    expect(text(await run([{ role: 'system', content: 'Be nice.' }]))).toBe(ECHO_GREETING);
    expect(text(await run([]))).toBe(ECHO_GREETING);
    expect(text(await run([{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'You said: hi.' }]))).toBe(
      ECHO_GREETING,
    );
  });

  it('echoes the last user message in several word chunks, never a tool call', async () => {
    const chunks = await run([
      { role: 'system', content: 'Be nice.' },
      { role: 'user', content: 'first' },
      { role: 'assistant', content: 'You said: first.' },
      { role: 'user', content: 'hello there my friend' },
    ]);
    expect(text(chunks)).toBe('You said: hello there my friend.');
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.every((c) => c.type === 'text')).toBe(true);
  });

  it('does not double the full stop of punctuated STT text, and reads content parts', async () => {
    expect(text(await run([{ role: 'user', content: 'Hello there.' }]))).toBe('You said: Hello there.');
    expect(text(await run([{ role: 'user', content: [{ type: 'text', text: 'parts work' }] }]))).toBe(
      'You said: parts work.',
    );
  });

  it('answers DTMF input with the digits', async () => {
    expect(text(await run([{ role: 'user', content: 'DTMF: 123#' }]))).toBe('You pressed 123#.');
  });

  it('stops at once when aborted mid-answer', async () => {
    const ac = new AbortController();
    const seen: LlmChunk[] = [];
    for await (const c of createEchoLlm().stream({
      messages: [{ role: 'user', content: 'one two three four five six' }],
      tools: [],
      signal: ac.signal,
    })) {
      seen.push(c);
      if (seen.length === 2) ac.abort();
    }
    expect(seen.length).toBe(2);
  });

  it('yields nothing when the signal is already aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    expect(await run([{ role: 'user', content: 'hello' }], ac.signal)).toEqual([]);
  });
});
