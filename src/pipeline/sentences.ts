// Sentence aggregation: LLM tokens in, whole sentences out, so the first sentence reaches the TTS as soon as it
// is complete instead of waiting for the whole reply.

/** Abbreviations whose period does not end a sentence. */
const ABBREVIATIONS = new Set([
  'mr', 'mrs', 'ms', 'dr', 'prof', 'sr', 'jr', 'st', 'vs', 'etc', 'e.g', 'i.e', 'no', 'approx', 'dept', 'inc', 'ltd', 'co', 'mt', 'ave',
]);

/**
 * Index just past the end of the first complete sentence in `text`, or -1. A sentence ends at `.`, `!`, `?`, `…`
 * (or their CJK forms) followed by whitespace; a period inside a number (3.5) or after a known abbreviation does
 * not end one. The character after the terminator must be seen, so "Hello." alone is not yet complete.
 */
export function sentenceEnd(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '。' || c === '！' || c === '？') return i + 1;
    if (c !== '.' && c !== '!' && c !== '?' && c !== '…') continue;
    let j = i + 1;
    while (j < text.length && /["'”’)\]]/.test(text[j] as string)) j++;
    if (j >= text.length) return -1;
    if (!/\s/.test(text[j] as string)) continue;
    if (c === '.') {
      const word = /([A-Za-z.]+)$/.exec(text.slice(0, i))?.[1]?.toLowerCase();
      if (word !== undefined && (ABBREVIATIONS.has(word) || /^[a-z]$/.test(word))) continue;
    }
    return j;
  }
  return -1;
}

export class SentenceSplitter {
  private buffer = '';

  /** Adds tokens; returns the sentences completed by them. */
  push(text: string): string[] {
    this.buffer += text;
    const out: string[] = [];
    for (;;) {
      const end = sentenceEnd(this.buffer);
      if (end < 0) break;
      const sentence = this.buffer.slice(0, end).trim();
      this.buffer = this.buffer.slice(end);
      if (sentence !== '') out.push(sentence);
    }
    return out;
  }

  /** The rest, when the LLM is done. */
  flush(): string {
    const rest = this.buffer.trim();
    this.buffer = '';
    return rest;
  }

  clear(): void {
    this.buffer = '';
  }
}
