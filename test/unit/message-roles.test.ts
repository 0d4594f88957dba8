// ai-manager's `function` and empty roles are mapped onto roles every LLM accepts when a call's context is built;
// call languages become the two-letter codes providers take.

import { describe, expect, it } from 'vitest';
import { ConversationContext } from '../../src/pipeline/context.js';
import { normalizeRoles } from '../../src/pipeline/message-roles.js';
import { toAnthropic } from '../../src/providers/llm/anthropic.js';
import { languageCode } from '../../src/providers/tts/language.js';

describe('message roles from ai-manager', () => {
  it('a legacy function_call and its function reply become tool_calls and a tool message with a shared id', () => {
    const out = normalizeRoles([
      { role: 'user', content: 'what time is it' },
      { role: 'assistant', content: null, function_call: { name: 'get_time', arguments: '{"tz":"UTC"}' } },
      { role: 'function', name: 'get_time', content: '{"time":"12:00"}' },
    ]);
    expect(out).toEqual([
      { role: 'user', content: 'what time is it' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_fn_1', type: 'function', function: { name: 'get_time', arguments: '{"tz":"UTC"}' } }] },
      { role: 'tool', tool_call_id: 'call_fn_1', content: '{"time":"12:00"}' },
    ]);
  });

  it('a function message with no call before it becomes user text naming the function; "" → user; empty "" dropped', () => {
    expect(
      normalizeRoles([
        { role: 'function', name: 'lookup', content: '{"found":true}' },
        { role: '', content: 'The caller is a VIP.' },
        { role: '', content: '' },
        { role: 'tool', tool_call_id: 'x', content: 'kept as it is' },
      ]),
    ).toEqual([
      { role: 'user', content: 'Result of function lookup: {"found":true}' },
      { role: 'user', content: 'The caller is a VIP.' },
      { role: 'tool', tool_call_id: 'x', content: 'kept as it is' },
    ]);
  });

  it('the context applies the mapping, and Anthropic then sees a valid conversation', () => {
    const ctx = new ConversationContext([
      { role: 'system', content: 'S' },
      { role: '', content: 'Note.' },
      { role: 'assistant', content: 'Hi.', function_call: { name: 'f', arguments: '{}' } },
      { role: 'function', name: 'f', content: 'ok' },
    ]);
    expect(ctx.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool']);
    const a = toAnthropic(ctx.messages);
    expect(a.system).toBe('S');
    expect(a.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
  });
});

describe('language codes', () => {
  it.each([
    ['en-US', 'en'],
    ['de_DE', 'de'],
    ['pt-BR', 'pt'],
    ['fr', 'fr'],
    ['', ''],
    ['not a language', ''],
  ])('%j → %j', (tag, code) => {
    expect(languageCode(tag)).toBe(code);
  });
});
