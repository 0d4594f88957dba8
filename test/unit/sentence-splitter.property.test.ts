// The incremental splitter must find exactly the sentences a from-scratch scan of the whole text finds, however
// the LLM cuts its tokens (it resumes scanning where it stopped instead of rescanning the buffer).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SentenceSplitter, sentenceEnd } from '../../src/pipeline/sentences.js';

/** Reference: repeatedly take the first sentence of the whole remaining text. */
function referenceSplit(text: string): { sentences: string[]; rest: string } {
  const sentences: string[] = [];
  let rest = text;
  for (let end = sentenceEnd(rest); end >= 0; end = sentenceEnd(rest)) {
    const s = rest.slice(0, end).trim();
    if (s !== '') sentences.push(s);
    rest = rest.slice(end);
  }
  return { sentences, rest: rest.trim() };
}

const pieces = fc.constantFrom('Hello', ' ', '.', '!', '?', '…', '"', ')', 'Dr', 'e.g', '3', 'J', 'x', '\n', '。', 'etc', 'approx', 'wonderful');

describe('SentenceSplitter', () => {
  it('gives the sentences of a whole-text scan for any cut of the tokens', () => {
    fc.assert(
      fc.property(fc.array(fc.array(pieces, { maxLength: 6 }).map((p) => p.join('')), { maxLength: 40 }), (tokens) => {
        const s = new SentenceSplitter();
        const got = tokens.flatMap((t) => s.push(t));
        const want = referenceSplit(tokens.join(''));
        expect(got).toEqual(want.sentences);
        expect(s.flush()).toBe(want.rest);
      }),
      { numRuns: 2_000 },
    );
  });

  it('takes a long reply without a full stop token by token and still splits what follows', () => {
    const s = new SentenceSplitter();
    let out: string[] = [];
    for (let i = 0; i < 32_768; i++) out = out.concat(s.push('abc '));
    expect(out).toEqual([]);
    expect(s.push('end. Next')).toHaveLength(1);
    expect(s.flush()).toBe('Next');
  });
});
