// Limits checked on a raw RPC request before it is parsed: its size and how deep its JSON nests. Parsing and
// re-encoding a 20 MB body or a 100,000-deep array costs memory and stack; refusing it is a 400, not a 500.

import { BadRequestError } from '../errors.js';

/** Deeper than any legitimate request (the envelope, a create body, chat messages with tool calls). */
export const MAX_REQUEST_JSON_DEPTH = 64;

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The deepest nesting of objects and arrays in JSON text (strings skipped), stopping once past `stopAt`. */
export function jsonDepth(body: Uint8Array, stopAt = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const b = body[i];
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
      continue;
    }
    if (b === QUOTE) inString = true;
    else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > stopAt) return max;
      }
    } else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) depth--;
  }
  return max;
}

/** Throws BadRequestError (RPC 400) when the request is too large or nests too deep. */
export function checkRequestLimits(body: Uint8Array, maxBytes: number): void {
  if (body.length > maxBytes) {
    throw new BadRequestError(`request of ${body.length} bytes is larger than the limit of ${maxBytes} (RPC_MAX_REQUEST_BYTES)`);
  }
  if (jsonDepth(body, MAX_REQUEST_JSON_DEPTH) > MAX_REQUEST_JSON_DEPTH) {
    throw new BadRequestError(`request JSON nests deeper than ${MAX_REQUEST_JSON_DEPTH} levels`);
  }
}
