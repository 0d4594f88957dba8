// The conversation context of a call: OpenAI chat messages, oldest first. Tool-call messages stay together with
// their tool replies (SPEC §3.4 fix: the old service dropped them and broke later turns).

import type { ChatMessage } from '../model/pipecatcall.js';
import type { LlmToolCall } from '../providers/types.js';
import { normalizeRoles } from './message-roles.js';

/** Past this many messages the oldest turns are dropped (the system prompt is always kept). */
const MAX_MESSAGES = 200;

export class ConversationContext {
  private readonly list: ChatMessage[];

  constructor(initial: readonly ChatMessage[]) {
    // ai-manager's `function` and `""` roles become roles every LLM accepts (message-roles.ts).
    this.list = normalizeRoles(initial);
  }

  get messages(): readonly ChatMessage[] {
    return this.list;
  }

  addUser(text: string): void {
    // Two user messages in a row (a message injected while the caller spoke) are merged: some vendors reject
    // consecutive same-role messages.
    const last = this.list[this.list.length - 1];
    if (last?.role === 'user' && typeof last.content === 'string' && last.tool_calls === undefined) {
      last.content = `${last.content}\n${text}`;
    } else {
      this.list.push({ role: 'user', content: text });
    }
    this.trim();
  }

  addAssistant(text: string): void {
    if (text === '') return;
    this.list.push({ role: 'assistant', content: text });
    this.trim();
  }

  addToolCalls(text: string, calls: readonly LlmToolCall[]): void {
    this.list.push({
      role: 'assistant',
      content: text === '' ? null : text,
      tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
    });
  }

  addToolResult(toolCallId: string, result: string): void {
    this.list.push({ role: 'tool', tool_call_id: toolCallId, content: result });
  }

  /** The text of the latest user message, or '' (for the echo bot and logs). */
  lastUserText(): string {
    for (let i = this.list.length - 1; i >= 0; i--) {
      const m = this.list[i];
      if (m?.role === 'user' && typeof m.content === 'string') return m.content;
    }
    return '';
  }

  /**
   * Drops the oldest non-system messages past the limit, never splitting an assistant tool-call message from its
   * tool replies (a `tool` message must follow its call).
   */
  private trim(): void {
    if (this.list.length <= MAX_MESSAGES) return;
    const firstDroppable = this.list.findIndex((m) => m.role !== 'system' && m.role !== 'developer');
    if (firstDroppable < 0) return;
    let end = firstDroppable + (this.list.length - MAX_MESSAGES);
    while (end < this.list.length && this.list[end]?.role === 'tool') end++;
    this.list.splice(firstDroppable, end - firstDroppable);
  }
}
