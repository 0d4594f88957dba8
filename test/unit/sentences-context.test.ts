import { describe, expect, it } from 'vitest';
import { ConversationContext } from '../../src/pipeline/context.js';
import { SentenceSplitter, sentenceEnd } from '../../src/pipeline/sentences.js';

describe('sentence aggregation', () => {
  it('emits each sentence as soon as the next character shows it is complete', () => {
    const s = new SentenceSplitter();
    expect(s.push('Hello')).toEqual([]);
    expect(s.push(' there.')).toEqual([]);
    expect(s.push(' How')).toEqual(['Hello there.']);
    expect(s.push(' are you? I am')).toEqual(['How are you?']);
    expect(s.flush()).toBe('I am');
    expect(s.flush()).toBe('');
  });

  it('does not split numbers, abbreviations or initials', () => {
    const s = new SentenceSplitter();
    expect(s.push('It costs 3.5 dollars, Dr. Smith said. Mr. J. Doe agreed! ')).toEqual([
      'It costs 3.5 dollars, Dr. Smith said.',
      'Mr. J. Doe agreed!',
    ]);
  });

  it('handles closing quotes and CJK terminators', () => {
    expect(sentenceEnd('He said "yes." Then')).toBe(14);
    expect(sentenceEnd('你好。再见')).toBe(3);
    expect(sentenceEnd('no end yet')).toBe(-1);
  });
});

describe('conversation context', () => {
  it('keeps assistant tool-call messages with their tool replies', () => {
    const c = new ConversationContext([{ role: 'system', content: 'x' }]);
    c.addUser('call me back');
    c.addToolCalls('One moment.', [{ id: 'call_1', name: 'connect_call', arguments: '{"destinations":[]}' }]);
    c.addToolResult('call_1', '{"status":"ok"}');
    c.addAssistant('Done.');
    expect(c.messages).toEqual([
      { role: 'system', content: 'x' },
      { role: 'user', content: 'call me back' },
      {
        role: 'assistant',
        content: 'One moment.',
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'connect_call', arguments: '{"destinations":[]}' } }],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '{"status":"ok"}' },
      { role: 'assistant', content: 'Done.' },
    ]);
  });

  it('merges consecutive user messages and ignores empty assistant text', () => {
    const c = new ConversationContext([]);
    c.addUser('a');
    c.addUser('b');
    c.addAssistant('');
    expect(c.messages).toEqual([{ role: 'user', content: 'a\nb' }]);
    expect(c.lastUserText()).toBe('a\nb');
  });

  it('trims old turns without orphaning tool replies, keeping the system prompt', () => {
    const c = new ConversationContext([{ role: 'system', content: 's' }]);
    for (let i = 0; i < 120; i++) {
      c.addUser(`u${i}`);
      c.addToolCalls('', [{ id: `t${i}`, name: 'get_variables', arguments: '{}' }]);
      c.addToolResult(`t${i}`, '{}');
      c.addAssistant(`a${i}`);
    }
    const m = c.messages;
    expect(m.length).toBeLessThanOrEqual(204);
    expect(m[0]).toEqual({ role: 'system', content: 's' });
    expect(m[1]?.role).not.toBe('tool');
    for (let i = 1; i < m.length; i++) {
      if (m[i]?.role === 'tool') expect(m[i - 1]?.role === 'tool' || Array.isArray(m[i - 1]?.tool_calls)).toBe(true);
    }
  });
});
