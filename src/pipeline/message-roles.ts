// ai-manager stores chat messages with two roles no LLM accepts today: `function` (OpenAI's deprecated function
// calling: an assistant `function_call` answered by a `function` message) and the empty role `""` (text without
// a speaker). They are mapped once, when a call's context is built, so every LLM sees the same history:
// - assistant `function_call` → `tool_calls` with one call whose id is made up (`call_fn_<n>`);
// - `function` right after it → `tool` answering that id; a `function` with no open call → a `user` message
//   `Result of function <name>: <content>` (there is no call to attach it to, and the model still sees it);
// - `""` → `user` when it carries content, dropped when empty.
// Every other message is kept as it is.

import type { ChatMessage } from '../model/pipecatcall.js';

export function normalizeRoles(messages: readonly ChatMessage[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  /** The made-up id of the latest legacy function call still waiting for its `function` reply. */
  let openCall: { id: string; name: string } | null = null;
  let counter = 0;
  for (const original of messages) {
    const m: ChatMessage = { ...original };
    if (m.role === 'assistant' && isFunctionCall(m.function_call) && m.tool_calls === undefined) {
      const id = `call_fn_${++counter}`;
      const { function_call: call, ...rest } = m;
      out.push({ ...rest, tool_calls: [{ id, type: 'function', function: { name: call.name, arguments: call.arguments ?? '{}' } }] });
      openCall = { id, name: call.name };
      continue;
    }
    if (m.role === 'function') {
      const name = typeof m.name === 'string' ? m.name : 'unknown';
      const content = contentText(m.content);
      if (openCall !== null && (openCall.name === name || typeof m.name !== 'string')) {
        out.push({ role: 'tool', tool_call_id: openCall.id, content });
      } else {
        out.push({ role: 'user', content: `Result of function ${name}: ${content}` });
      }
      openCall = null;
      continue;
    }
    openCall = null;
    if (m.role === '') {
      if (contentText(m.content).trim() === '') continue;
      out.push({ ...m, role: 'user' });
      continue;
    }
    out.push(m);
  }
  return out;
}

function isFunctionCall(v: unknown): v is { name: string; arguments?: string } {
  return typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string';
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  return JSON.stringify(content);
}
