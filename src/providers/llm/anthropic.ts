// LLM adapter for Anthropic's Messages API through the official `@anthropic-ai/sdk`, streaming with tools (SPEC
// §3.4; ai-manager's `anthropic` vendor). The call's context is OpenAI chat messages; they are translated here.
// Watchdogs, abort and retries live in the LLM base.
//
// Translation (OpenAI chat → Messages API):
// - `system`/`developer` messages → the `system` parameter, in order, joined by blank lines.
// - assistant `tool_calls` → `tool_use` blocks (arguments parsed from their JSON text); `tool` replies →
//   `tool_result` blocks in the next user turn. Consecutive messages of one role are merged into one turn,
//   as the API wants a user turn to hold every tool_result of the assistant turn before it.
// - The API needs a user turn first: when the bot speaks first (nothing but the system prompt) or the history
//   starts with the bot, a short user turn saying the call has just connected is put in front.
// Streaming: `text_delta` → text; `tool_use` starts and `input_json_delta` pieces are reassembled into complete
// tool calls, delivered once the message ends. A stream that ends without `stop_reason` was cut off (retryable).

import type AnthropicClient from '@anthropic-ai/sdk';
import type { MessageCreateParamsStreaming, MessageParam, ContentBlockParam, Tool } from '@anthropic-ai/sdk/resources/messages';

import { ProviderError } from '../../errors.js';
import type { ChatMessage } from '../../model/pipecatcall.js';
import { createStreamingLlm, DEFAULT_FIRST_TOKEN_TIMEOUT_MS, type LlmAdapter, type LlmPolicy, type LlmStep } from '../base/llm.js';
import { describeCause, hostOf, providerFailure, redactorFor } from '../base/failure.js';
import type { LlmClient, LlmRequest, LlmToolCall } from '../types.js';

export interface AnthropicLlmSettings extends LlmPolicy {
  model: string;
  apiKey: string;
  /** '' = the SDK's default (https://api.anthropic.com). */
  baseUrl: string;
  /** Default 1024: a phone reply is a few sentences. */
  maxTokens?: number;
}

const DEFAULT_BASE_URL = 'https://api.anthropic.com';
/** The user turn put in front when the bot speaks first: the API refuses a conversation that starts otherwise. */
export const CALL_CONNECTED = '(The call has just connected.)';

type Sdk = typeof import('@anthropic-ai/sdk');
let sdk: Promise<Sdk> | undefined;
/** Loaded when the first call needs it (it costs about a second of startup), then shared. */
function loadSdk(): Promise<Sdk> {
  sdk ??= import('@anthropic-ai/sdk');
  return sdk;
}

export function createAnthropicLlm(settings: AnthropicLlmSettings): LlmClient {
  return createStreamingLlm(new AnthropicAdapter(settings), settings);
}

class AnthropicAdapter implements LlmAdapter {
  readonly name: string;
  readonly where: string;
  private readonly client: Promise<AnthropicClient>;
  private Anthropic: Sdk['default'] | undefined;
  private readonly redact: (text: string) => string;

  constructor(private readonly settings: AnthropicLlmSettings) {
    const baseURL = settings.baseUrl === '' ? DEFAULT_BASE_URL : settings.baseUrl;
    this.name = `anthropic.${settings.model}`;
    this.where = `anthropic LLM at ${hostOf(baseURL) || '(invalid base URL)'}`;
    this.redact = redactorFor(settings.apiKey);
    this.client = loadSdk().then(({ default: Anthropic }) => {
      this.Anthropic = Anthropic;
      return this.makeClient(Anthropic, baseURL);
    });
    this.client.catch(() => undefined); // reported by generate()
  }

  private makeClient(Anthropic: Sdk['default'], baseURL: string): AnthropicClient {
    const { settings } = this;
    return new Anthropic({
      apiKey: settings.apiKey,
      // Explicit, so the SDK never reads ANTHROPIC_BASE_URL/ANTHROPIC_AUTH_TOKEN itself: config comes from one place.
      baseURL,
      authToken: null,
      maxRetries: 0,
      timeout: Math.max(1, Math.ceil(settings.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_TIMEOUT_MS)),
      logLevel: 'off',
    });
  }

  async prepare(): Promise<void> {
    await this.client;
  }

  async *generate(request: LlmRequest, signal: AbortSignal): AsyncGenerator<LlmStep, void, undefined> {
    const { system, messages } = toAnthropic(request.messages);
    const body: MessageCreateParamsStreaming = {
      model: this.settings.model,
      max_tokens: this.settings.maxTokens ?? 1024,
      messages,
      stream: true,
      ...(system !== '' ? { system } : {}),
      ...(request.tools.length > 0
        ? { tools: request.tools.map((t): Tool => ({ name: t.name, description: t.description, input_schema: t.parameters as Tool['input_schema'] })) }
        : {}),
    };
    const stream = await (await this.client).messages.create(body, { signal });
    const calls = new Map<number, LlmToolCall & { input: unknown }>();
    let stopReason: string | undefined;
    for await (const event of stream) {
      let token = false;
      switch (event.type) {
        case 'content_block_start':
          if (event.content_block.type === 'tool_use') {
            token = true;
            const block = event.content_block;
            calls.set(event.index, { id: block.id, name: block.name, arguments: '', input: block.input });
          }
          break;
        case 'content_block_delta':
          if (event.delta.type === 'text_delta' && event.delta.text !== '') {
            yield { type: 'text', text: event.delta.text };
            continue;
          }
          if (event.delta.type === 'input_json_delta') {
            token = true;
            const call = calls.get(event.index);
            if (call !== undefined) call.arguments += event.delta.partial_json;
          }
          break;
        case 'message_delta':
          if (typeof event.delta.stop_reason === 'string') {
            token = true;
            stopReason = event.delta.stop_reason;
          }
          break;
        default:
          break;
      }
      yield { type: 'progress', token };
    }
    if (signal.aborted) return;
    if (stopReason === undefined) {
      throw providerFailure(this.name, 'llm', 'network', `${this.where}: stream ended before the model finished (no stop_reason)`);
    }
    const out = [...calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, c]): LlmToolCall => ({ id: c.id, name: c.name, arguments: c.arguments !== '' ? c.arguments : JSON.stringify(c.input ?? {}) }));
    if (out.length > 0) yield { type: 'tool_calls', calls: out };
  }

  toError(err: unknown): ProviderError {
    const { name, where, Anthropic } = this;
    if (err instanceof ProviderError) return err;
    if (Anthropic === undefined) return providerFailure(name, 'llm', 'refused', `the Anthropic SDK cannot be loaded: ${describeCause(err)}`);
    if (err instanceof Anthropic.APIConnectionTimeoutError) {
      return providerFailure(name, 'llm', 'stall', `${where}: no response within ${this.settings.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_TIMEOUT_MS} ms`);
    }
    if (err instanceof Anthropic.APIConnectionError) {
      return providerFailure(name, 'llm', 'network', `${where}: connection failed: ${this.redact(describeCause(err.cause))}`, { cause: err.cause });
    }
    if (err instanceof Anthropic.APIError) {
      const detail = this.redact(apiErrorDetail(err));
      if (typeof err.status === 'number') {
        // No `cause`: the SDK error carries the response body, which a server may fill with the key.
        return providerFailure(name, 'llm', 'http', `${where} answered HTTP ${err.status}: ${detail}`, { status: err.status });
      }
      return providerFailure(name, 'llm', 'server', `${where} reported an error mid-stream: ${detail}`);
    }
    if (err instanceof SyntaxError) {
      return providerFailure(name, 'llm', 'malformed', `${where} sent a malformed stream (invalid JSON in an SSE event)`, { cause: err });
    }
    return providerFailure(name, 'llm', 'network', `${where}: stream failed: ${this.redact(describeCause(err))}`, { cause: err });
  }
}

function apiErrorDetail(err: { error: unknown; message: string }): string {
  const body = err.error as { error?: { message?: unknown }; message?: unknown } | undefined;
  const message = body?.error?.message ?? body?.message;
  if (typeof message === 'string' && message !== '') return message;
  return err.message.replace(/^\d{3}\s+/, '') || 'no details';
}

/** The OpenAI-style context as the Messages API wants it (see the header). */
export function toAnthropic(messages: readonly ChatMessage[]): { system: string; messages: MessageParam[] } {
  const system: string[] = [];
  const out: MessageParam[] = [];
  const append = (role: 'user' | 'assistant', blocks: ContentBlockParam[]): void => {
    if (blocks.length === 0) return;
    const last = out[out.length - 1];
    if (last !== undefined && last.role === role && Array.isArray(last.content)) last.content.push(...blocks);
    else out.push({ role, content: blocks });
  };
  for (const m of messages) {
    const text = textOf(m.content);
    switch (m.role) {
      case 'system':
      case 'developer':
        if (text !== '') system.push(text);
        break;
      case 'assistant': {
        const blocks: ContentBlockParam[] = text !== '' ? [{ type: 'text', text }] : [];
        for (const call of Array.isArray(m.tool_calls) ? (m.tool_calls as unknown[]) : []) {
          const c = call as { id?: unknown; function?: { name?: unknown; arguments?: unknown } };
          if (typeof c.id !== 'string' || typeof c.function?.name !== 'string') continue;
          blocks.push({ type: 'tool_use', id: c.id, name: c.function.name, input: parseArguments(c.function.arguments) });
        }
        append('assistant', blocks);
        break;
      }
      case 'tool':
        append('user', [{ type: 'tool_result', tool_use_id: typeof m.tool_call_id === 'string' ? m.tool_call_id : '', content: text }]);
        break;
      default:
        if (text !== '') append('user', [{ type: 'text', text }]);
    }
  }
  if (out[0]?.role !== 'user') out.unshift({ role: 'user', content: [{ type: 'text', text: CALL_CONNECTED }] });
  return { system: system.join('\n\n'), messages: out };
}

function parseArguments(text: unknown): Record<string, unknown> {
  if (typeof text !== 'string' || text === '') return {};
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Text of a message's content: a string, or the text parts of OpenAI content parts. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((p: unknown) => (typeof p === 'object' && p !== null && 'text' in p && typeof p.text === 'string' ? p.text : ''))
    .filter((t) => t !== '')
    .join(' ');
}
