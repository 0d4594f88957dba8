// Sentence aggregation: LLM tokens in, whole sentences out, so the first sentence reaches the TTS as soon as it
// is complete instead of waiting for the whole reply. Linear in the text: each character is examined a bounded
// number of times however the tokens are cut (a 128 KB reply without a full stop once blocked the loop for 7 s).

/** Abbreviations whose period does not end a sentence. */
const ABBREVIATIONS = new Set([
  'mr', 'mrs', 'ms', 'dr', 'prof', 'sr', 'jr', 'st', 'vs', 'etc', 'e.g', 'i.e', 'no', 'approx', 'dept', 'inc', 'ltd', 'co', 'mt', 'ave',
]);
/** Longer than any abbreviation: a word this long before a period is never one. */
const MAX_ABBREVIATION = 8;

const CLOSERS = new Set(['"', "'", '”', '’', ')', ']']);
const WHITESPACE = /\s/;

function isLetterOrDot(c: string | undefined): boolean {
  return c !== undefined && (c === '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
}

/** True when the period at `i` follows a known abbreviation or a single letter ("J. Smith"). */
function afterAbbreviation(text: string, i: number): boolean {
  let k = i;
  while (k > 0 && i - k <= MAX_ABBREVIATION && isLetterOrDot(text[k - 1])) k--;
  if (i - k > MAX_ABBREVIATION || k === i) return false;
  const word = text.slice(k, i).toLowerCase();
  return ABBREVIATIONS.has(word) || /^[a-z]$/.test(word);
}

/**
 * Where the first complete sentence of `text` at or after `from` ends (`end`, or -1), and from where a later call
 * must look again once more text has been appended (`resume`): a terminator at the very end is undecided until
 * the next character is seen. A sentence ends at `.`, `!`, `?`, `…` (or their CJK forms) followed by whitespace;
 * a period inside a number (3.5) or after a known abbreviation does not end one.
 */
export function findSentenceEnd(text: string, from = 0): { end: number; resume: number } {
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '。' || c === '！' || c === '？') return { end: i + 1, resume: i + 1 };
    if (c !== '.' && c !== '!' && c !== '?' && c !== '…') continue;
    let j = i + 1;
    while (j < text.length && CLOSERS.has(text[j] as string)) j++;
    if (j >= text.length) return { end: -1, resume: i };
    if (!WHITESPACE.test(text[j] as string)) {
      i = j - 1; // the closers in between cannot end a sentence either
      continue;
    }
    if (c === '.' && afterAbbreviation(text, i)) continue;
    return { end: j, resume: j };
  }
  return { end: -1, resume: text.length };
}

/** Index just past the end of the first complete sentence in `text`, or -1. */
export function sentenceEnd(text: string): number {
  return findSentenceEnd(text).end;
}

export class SentenceSplitter {
  private buffer = '';
  /** Everything before this index of the buffer is known not to end a sentence. */
  private scanned = 0;

  /** Adds tokens; returns the sentences completed by them. */
  push(text: string): string[] {
    this.buffer += text;
    const out: string[] = [];
    let start = 0;
    for (;;) {
      const { end, resume } = findSentenceEnd(this.buffer, Math.max(start, this.scanned));
      if (end < 0) {
        this.scanned = resume;
        break;
      }
      const sentence = this.buffer.slice(start, end).trim();
      if (sentence !== '') out.push(sentence);
      start = end;
    }
    // One slice per push, not one per sentence, and the scan position moves with it.
    if (start > 0) {
      this.buffer = this.buffer.slice(start);
      this.scanned = Math.max(0, this.scanned - start);
    }
    return out;
  }

  /** The rest, when the LLM is done. */
  flush(): string {
    const rest = this.buffer.trim();
    this.clear();
    return rest;
  }

  clear(): void {
    this.buffer = '';
    this.scanned = 0;
  }
}
