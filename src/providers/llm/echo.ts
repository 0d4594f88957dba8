// `local.echo` (SPEC §3.4): an offline diagnostic LLM that repeats the caller's last words, so a whole call can
// run with no key and no network. It streams its answer in word chunks like a real model and never uses tools.

import type { ChatMessage } from '../../model/pipecatcall.js';
import type { LlmChunk, LlmClient, LlmRequest } from '../types.js';

/** What the echo bot says when it speaks first (pipeline start) or was not just spoken to. */
export const ECHO_GREETING = 'Hello! This is the echo bot. Say something and I will repeat it.';

const DTMF_PREFIX = 'DTMF: ';

export function createEchoLlm(): LlmClient {
  return {
    name: 'local.echo',
    stream: (request: LlmRequest) => streamAnswer(answerFor(request.messages), request.signal),
  };
}

function answerFor(messages: readonly ChatMessage[]): string {
  const last = messages.at(-1);
  if (last?.role !== 'user') return ECHO_GREETING;
  const text = textOf(last).trim();
  if (text.startsWith(DTMF_PREFIX)) return `You pressed ${text.slice(DTMF_PREFIX.length).trim()}.`;
  if (text === '') return 'I did not hear anything. Say something and I will repeat it.';
  // STT output is often already punctuated ("Hello there."): no doubled full stop.
  return /[.!?]$/.test(text) ? `You said: ${text}` : `You said: ${text}.`;
}

/** User content is a string or OpenAI content parts; only the text parts are spoken. */
function textOf(message: ChatMessage): string {
  const content = message['content'];
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const texts: string[] = [];
  for (const part of content as unknown[]) {
    if (typeof part === 'object' && part !== null && 'text' in part && typeof part.text === 'string') {
      texts.push(part.text);
    }
  }
  return texts.join(' ');
}

async function* streamAnswer(answer: string, signal: AbortSignal): AsyncGenerator<LlmChunk, void, undefined> {
  // Word chunks keep their following space, so the pieces concatenate back to the exact answer.
  const pieces = answer.match(/\S+\s*/g) ?? [];
  for (const text of pieces) {
    if (signal.aborted) return;
    // One event-loop turn per chunk: the answer arrives as a stream, and an abort raised meanwhile is seen.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (signal.aborted) return;
    yield { type: 'text', text };
  }
}
