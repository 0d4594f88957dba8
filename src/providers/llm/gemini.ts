// LLM adapter for Google's Gemini API through the official `@google/genai` SDK, streaming with tools (SPEC §3.4;
// ai-manager's `gemini` vendor). The call's context is OpenAI chat messages; they are translated here. Watchdogs,
// abort and retries live in the LLM base.
//
// Translation (OpenAI chat → Gemini contents):
// - `system`/`developer` → `systemInstruction`; `user` → role `user`; `assistant` → role `model`.
// - assistant `tool_calls` → `functionCall` parts (arguments parsed from their JSON text); a `tool` reply →
//   a `functionResponse` part (named after the call it answers) in a user turn; a reply that is not a JSON
//   object is wrapped as `{"result": …}` (Gemini wants an object).
// - Gemini needs a user turn first: the bot speaking first gets a short "call connected" user turn in front.
// Streaming: text parts are delivered as they come; Gemini sends each function call whole (not in pieces), and
// may omit its id: such calls get `gemini_call_<n>` so tool results can be matched. No `finishReason` at the end
// means the stream was cut off (retryable).

import type { Content, FunctionDeclaration, GenerateContentParameters, GoogleGenAI, Part } from '@google/genai';

import { ProviderError } from '../../errors.js';
import type { ChatMessage } from '../../model/pipecatcall.js';
import { createStreamingLlm, DEFAULT_FIRST_TOKEN_TIMEOUT_MS, type LlmAdapter, type LlmPolicy, type LlmStep } from '../base/llm.js';
import { describeCause, hostOf, providerFailure, redactorFor } from '../base/failure.js';
import type { LlmClient, LlmRequest, LlmToolCall } from '../types.js';
import { CALL_CONNECTED } from './anthropic.js';

export interface GeminiLlmSettings extends LlmPolicy {
  model: string;
  apiKey: string;
  /** '' = the SDK's default (https://generativelanguage.googleapis.com). */
  baseUrl: string;
}

const DEFAULT_BASE_URL = 'https://generativelanguage.googleapis.com';

type Sdk = typeof import('@google/genai');
let sdk: Promise<Sdk> | undefined;
/** Loaded when the first call needs it (it costs about a second of startup), then shared. */
function loadSdk(): Promise<Sdk> {
  sdk ??= import('@google/genai');
  return sdk;
}

export function createGeminiLlm(settings: GeminiLlmSettings): LlmClient {
  return createStreamingLlm(new GeminiAdapter(settings), settings);
}

class GeminiAdapter implements LlmAdapter {
  readonly name: string;
  readonly where: string;
  private readonly client: Promise<GoogleGenAI>;
  private ApiError: Sdk['ApiError'] | undefined;
  private readonly redact: (text: string) => string;
  private calls = 0;

  constructor(private readonly settings: GeminiLlmSettings) {
    const baseUrl = settings.baseUrl === '' ? DEFAULT_BASE_URL : settings.baseUrl;
    this.name = `gemini.${settings.model}`;
    this.where = `gemini LLM at ${hostOf(baseUrl) || '(invalid base URL)'}`;
    this.redact = redactorFor(settings.apiKey);
    const timeout = Math.max(1, Math.ceil(settings.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_TIMEOUT_MS));
    this.client = loadSdk().then(({ GoogleGenAI, ApiError }) => {
      this.ApiError = ApiError;
      // The SDK's own retries (5 attempts by default) would hide failures from the base and blow the voice budget.
      return new GoogleGenAI({ apiKey: settings.apiKey, httpOptions: { baseUrl, retryOptions: { attempts: 1 }, timeout } });
    });
    this.client.catch(() => undefined); // reported by generate()
  }

  async prepare(): Promise<void> {
    await this.client;
  }

  async *generate(request: LlmRequest, signal: AbortSignal): AsyncGenerator<LlmStep, void, undefined> {
    const { system, contents } = toGemini(request.messages);
    const params: GenerateContentParameters = {
      model: this.settings.model,
      contents,
      config: {
        abortSignal: signal,
        ...(system !== '' ? { systemInstruction: system } : {}),
        ...(request.tools.length > 0
          ? { tools: [{ functionDeclarations: request.tools.map((t): FunctionDeclaration => ({ name: t.name, description: t.description, parametersJsonSchema: t.parameters })) }] }
          : {}),
      },
    };
    const stream = await (await this.client).models.generateContentStream(params);
    const calls: LlmToolCall[] = [];
    let finished = false;
    for await (const chunk of stream) {
      const candidate = chunk.candidates?.[0];
      let token = false;
      for (const part of candidate?.content?.parts ?? []) {
        if (typeof part.text === 'string' && part.text !== '' && part.thought !== true) yield { type: 'text', text: part.text };
        const call = part.functionCall;
        if (call?.name !== undefined) {
          token = true;
          calls.push({ id: call.id ?? `gemini_call_${++this.calls}`, name: call.name, arguments: JSON.stringify(call.args ?? {}) });
        }
      }
      if (candidate?.finishReason !== undefined) {
        token = true;
        finished = true;
      }
      yield { type: 'progress', token };
    }
    if (signal.aborted) return;
    if (!finished) throw providerFailure(this.name, 'llm', 'network', `${this.where}: stream ended before the model finished (no finishReason)`);
    if (calls.length > 0) yield { type: 'tool_calls', calls };
  }

  toError(err: unknown): ProviderError {
    if (err instanceof ProviderError) return err;
    if (this.ApiError === undefined) return providerFailure(this.name, 'llm', 'refused', `the Gemini SDK cannot be loaded: ${describeCause(err)}`);
    if (err instanceof this.ApiError) {
      // The SDK's message carries the response body: redacted, and never kept as the cause.
      return providerFailure(this.name, 'llm', 'http', `${this.where} answered HTTP ${err.status}: ${this.redact(err.message).slice(0, 300)}`, { status: err.status });
    }
    if (err instanceof SyntaxError) {
      return providerFailure(this.name, 'llm', 'malformed', `${this.where} sent a malformed stream (invalid JSON in an SSE event)`, { cause: err });
    }
    return providerFailure(this.name, 'llm', 'network', `${this.where}: request failed: ${this.redact(describeCause(err))}`, { cause: err });
  }
}

/** The OpenAI-style context as Gemini wants it (see the header). */
export function toGemini(messages: readonly ChatMessage[]): { system: string; contents: Content[] } {
  const system: string[] = [];
  const contents: Content[] = [];
  const names = new Map<string, string>();
  const append = (role: 'user' | 'model', parts: Part[]): void => {
    if (parts.length === 0) return;
    const last = contents[contents.length - 1];
    if (last?.role === role) (last.parts ??= []).push(...parts);
    else contents.push({ role, parts });
  };
  for (const m of messages) {
    const text = typeof m.content === 'string' ? m.content : '';
    switch (m.role) {
      case 'system':
      case 'developer':
        if (text !== '') system.push(text);
        break;
      case 'assistant': {
        const parts: Part[] = text !== '' ? [{ text }] : [];
        for (const raw of Array.isArray(m.tool_calls) ? (m.tool_calls as unknown[]) : []) {
          const c = raw as { id?: unknown; function?: { name?: unknown; arguments?: unknown } };
          if (typeof c.id !== 'string' || typeof c.function?.name !== 'string') continue;
          names.set(c.id, c.function.name);
          parts.push({ functionCall: { id: c.id, name: c.function.name, args: asObject(c.function.arguments) } });
        }
        append('model', parts);
        break;
      }
      case 'tool': {
        const id = typeof m.tool_call_id === 'string' ? m.tool_call_id : '';
        append('user', [{ functionResponse: { id, name: names.get(id) ?? 'unknown', response: asObject(text, true) } }]);
        break;
      }
      default:
        if (text !== '') append('user', [{ text }]);
    }
  }
  if (contents[0]?.role !== 'user') contents.unshift({ role: 'user', parts: [{ text: CALL_CONNECTED }] });
  return { system: system.join('\n\n'), contents };
}

function asObject(text: unknown, wrap = false): Record<string, unknown> {
  if (typeof text === 'string' && text !== '') {
    try {
      const v: unknown = JSON.parse(text);
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
      return wrap ? { result: v } : {};
    } catch {
      return wrap ? { result: text } : {};
    }
  }
  return {};
}
